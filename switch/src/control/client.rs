//! `podswitch ctl`: the control socket's client. It turns a command line
//! into one [`Request`], sends it, and prints the reply as a table (see
//! `crate::render`) or, with `--json`, as the raw data. An error reply
//! goes to stderr with a non-zero exit status.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::protocol::{
    CaptureRequest, EndpointAdd, FrameFilter, MappingSpec, NetworkAdd, Request, TraceRequest,
};
use crate::render;

/// `podswitch ctl [--socket PATH] [--json] COMMAND`.
#[derive(Debug, Args)]
pub struct Ctl {
    /// The daemon's control socket (`[switch] control`).
    #[arg(long, default_value = "/run/podswitch.sock")]
    pub socket: PathBuf,
    /// Print the reply's data as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub cmd: CtlCmd,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum CtlCmd {
    /// Networks, endpoints, ports, mappings, overlay peers.
    Show,
    /// Counters per port, network, NAT and PMD thread.
    Stats,
    /// Learned MACs (of one network).
    Fdb {
        /// Only this network.
        network: Option<String>,
    },
    /// NAT connections.
    Conntrack {
        /// Only this network's.
        #[arg(long)]
        network: Option<String>,
        /// At most this many (default 1000).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Next hops the uplinks resolved.
    Neighbors,
    /// Attach or detach an endpoint.
    Endpoint {
        #[command(subcommand)]
        cmd: EndpointCmd,
    },
    /// Create or remove a network at run time.
    Network {
        #[command(subcommand)]
        cmd: NetworkCmd,
    },
    /// Add or remove a port mapping.
    Mapping {
        #[command(subcommand)]
        cmd: MappingCmd,
    },
    /// Re-read the config file and apply the difference.
    Reload,
    /// Show the path of the next matching frame (or of a hex frame).
    Trace {
        /// Input port (required with --hex).
        #[arg(long)]
        port: Option<String>,
        #[command(flatten)]
        filter: FrameFilter,
        /// Trace this frame (hex bytes) instead of a live one.
        #[arg(long)]
        hex: Option<String>,
        /// How long to wait for a matching frame.
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
    },
    /// Write a port's frames as pcap to FILE, or to stdout with `-w -`.
    Capture {
        /// Port or endpoint name.
        port: String,
        /// Stop after this many frames.
        #[arg(long)]
        count: Option<u64>,
        #[command(flatten)]
        filter: FrameFilter,
        /// Output file, `-` for stdout.
        #[arg(short = 'w', value_name = "FILE")]
        write: PathBuf,
    },
}

/// `ctl endpoint add|del`.
#[derive(Debug, Subcommand)]
pub enum EndpointCmd {
    /// Attach a container's namespace to a network.
    Add(EndpointAdd),
    /// Detach an endpoint (an unknown name is not an error).
    Del {
        /// Endpoint name.
        name: String,
    },
}

/// `ctl network add|del`.
#[derive(Debug, Subcommand)]
pub enum NetworkCmd {
    /// Create a nat network (on the uplink's NAT) or an isolated one.
    Add(NetworkAdd),
    /// Remove a network without endpoints (an unknown name is not an error).
    Del {
        /// Network name.
        name: String,
    },
}

/// `ctl mapping add|del ENDPOINT PROTO HOST_PORT:PORT`.
#[derive(Debug, Subcommand)]
pub enum MappingCmd {
    /// Publish `HOST_PORT` of the uplink address as the endpoint's `PORT`.
    Add(MappingArgs),
    /// Withdraw a published port (an unknown one is not an error).
    Del(MappingArgs),
}

/// A mapping on the command line.
#[derive(Debug, Args)]
pub struct MappingArgs {
    /// The endpoint.
    pub endpoint: String,
    /// `tcp` or `udp`.
    pub proto: String,
    /// `HOST_PORT:PORT` (or one number for both).
    pub ports: String,
}

impl MappingArgs {
    fn spec(self) -> Result<MappingSpec> {
        let (host, inner) = self
            .ports
            .split_once(':')
            .unwrap_or((&self.ports, &self.ports));
        let port = |s: &str| {
            s.parse::<u16>()
                .with_context(|| format!("{s:?} is not a port number (HOST_PORT:PORT)"))
        };
        Ok(MappingSpec {
            endpoint: self.endpoint,
            protocol: self.proto,
            host_port: port(host)?,
            port: port(inner)?,
        })
    }
}

/// A reply line.
#[derive(Debug, Deserialize)]
pub struct Reply {
    /// Success.
    pub ok: bool,
    /// The answer, when `ok`.
    #[serde(default)]
    pub data: serde_json::Value,
    /// Why not, otherwise.
    #[serde(default)]
    pub error: Option<String>,
}

impl Reply {
    /// The data of an `ok` reply; the error of another.
    pub fn data(self) -> Result<serde_json::Value> {
        if self.ok {
            Ok(self.data)
        } else {
            bail!("{}", self.error.unwrap_or_else(|| "error".into()))
        }
    }
}

/// A connection to a daemon's control socket.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connects to `socket`.
    pub fn connect(socket: &Path) -> Result<Client> {
        let conn = UnixStream::connect(socket).with_context(|| {
            format!(
                "connecting to {} (is podswitch running there, and are you root or its user?)",
                socket.display()
            )
        })?;
        Ok(Client {
            writer: conn.try_clone()?,
            reader: BufReader::new(conn),
        })
    }

    /// Sends one request and reads its reply line.
    pub fn request(&mut self, req: &Request) -> Result<Reply> {
        let mut line = serde_json::to_vec(req)?;
        line.push(b'\n');
        self.writer.write_all(&line)?;
        self.reply()
    }

    /// Reads one reply line.
    pub fn reply(&mut self) -> Result<Reply> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            bail!("the daemon closed the connection without a reply");
        }
        serde_json::from_str(&line).with_context(|| format!("a reply that is not JSON: {line:?}"))
    }

    /// The rest of the stream (a capture's pcap bytes), into `out`,
    /// flushed as it arrives (a reader such as `tcpdump -r -` sees each
    /// frame when it comes, not when a buffer fills).
    pub fn copy_rest(&mut self, out: &mut dyn Write) -> Result<u64> {
        let mut total = 0;
        loop {
            let chunk = self.reader.fill_buf()?;
            if chunk.is_empty() {
                return Ok(total);
            }
            let n = chunk.len();
            out.write_all(chunk)?;
            out.flush()?;
            self.reader.consume(n);
            total += n as u64;
        }
    }
}

impl Ctl {
    /// Runs the command; errors go to stderr.
    pub fn run(self) -> ExitCode {
        match self.execute() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("podswitch ctl: {e:#}");
                ExitCode::FAILURE
            }
        }
    }

    fn execute(self) -> Result<()> {
        let json = self.json;
        let mut client = Client::connect(&self.socket)?;
        if let CtlCmd::Capture {
            port,
            count,
            filter,
            write,
        } = self.cmd
        {
            return capture(&mut client, port, count, filter, &write);
        }
        let req = request_of(self.cmd)?;
        let data = client.request(&req)?.data()?;
        let text = if json {
            format!("{data:#}\n")
        } else {
            human(&req, data)?
        };
        std::io::stdout().write_all(text.as_bytes())?;
        Ok(())
    }
}

fn request_of(cmd: CtlCmd) -> Result<Request> {
    Ok(match cmd {
        CtlCmd::Show => Request::Show,
        CtlCmd::Stats => Request::Stats,
        CtlCmd::Fdb { network } => Request::Fdb { network },
        CtlCmd::Conntrack { network, limit } => Request::Conntrack { network, limit },
        CtlCmd::Neighbors => Request::Neighbors,
        CtlCmd::Endpoint {
            cmd: EndpointCmd::Add(e),
        } => Request::EndpointAdd(e),
        CtlCmd::Endpoint {
            cmd: EndpointCmd::Del { name },
        } => Request::EndpointDel { name },
        CtlCmd::Network {
            cmd: NetworkCmd::Add(n),
        } => Request::NetworkAdd(n),
        CtlCmd::Network {
            cmd: NetworkCmd::Del { name },
        } => Request::NetworkDel { name },
        CtlCmd::Mapping {
            cmd: MappingCmd::Add(m),
        } => Request::MappingAdd(m.spec()?),
        CtlCmd::Mapping {
            cmd: MappingCmd::Del(m),
        } => Request::MappingDel(m.spec()?),
        CtlCmd::Reload => Request::Reload,
        CtlCmd::Trace {
            port,
            filter,
            hex,
            timeout_ms,
        } => Request::Trace(TraceRequest {
            port,
            filter,
            hex,
            timeout_ms,
        }),
        CtlCmd::Capture { .. } => bail!("capture streams; see `capture`"),
    })
}

fn parse<T: DeserializeOwned>(data: serde_json::Value) -> Result<T> {
    serde_json::from_value(data).context("a reply this ctl does not understand (version mismatch?)")
}

/// The table for a reply.
fn human(req: &Request, data: serde_json::Value) -> Result<String> {
    Ok(match req {
        Request::Show => render::show(&parse(data)?),
        Request::Stats => render::stats(&parse(data)?),
        Request::Fdb { .. } => render::fdb(&parse::<Vec<_>>(data)?),
        Request::Conntrack { .. } => render::conntrack(&parse::<Vec<_>>(data)?),
        Request::Neighbors => render::neighbors(&parse::<Vec<_>>(data)?),
        Request::EndpointAdd(_) => render::endpoint(&parse(data)?),
        Request::EndpointDel { name } => deleted(&data, &format!("endpoint {name}")),
        Request::NetworkAdd(_) => format!(
            "network {} {} gateway {} uplink {}\n",
            data["name"].as_str().unwrap_or("?"),
            data["subnet"].as_str().unwrap_or("?"),
            data["gateway"].as_str().unwrap_or("-"),
            data["uplink"].as_str().unwrap_or("-")
        ),
        Request::NetworkDel { name } => deleted(&data, &format!("network {name}")),
        Request::MappingAdd(m) => format!(
            "mapping {} {}:{} -> {}:{} added\n",
            m.protocol, "host", m.host_port, m.endpoint, m.port
        ),
        Request::MappingDel(m) => deleted(
            &data,
            &format!(
                "mapping {} {} -> {}:{}",
                m.protocol, m.host_port, m.endpoint, m.port
            ),
        ),
        Request::Reload => render::reload(&parse(data)?),
        Request::Trace(_) => render::trace(&parse(data)?),
        Request::Capture(_) => String::new(),
    })
}

fn deleted(data: &serde_json::Value, what: &str) -> String {
    if data.get("deleted").and_then(|d| d.as_bool()) == Some(true) {
        format!("{what} deleted\n")
    } else {
        format!("{what} did not exist (nothing to do)\n")
    }
}

fn capture(
    client: &mut Client,
    port: String,
    count: Option<u64>,
    filter: FrameFilter,
    write: &Path,
) -> Result<()> {
    let req = Request::Capture(CaptureRequest {
        port,
        count,
        filter,
    });
    client.request(&req)?.data()?;
    let mut out: Box<dyn Write> = if write == Path::new("-") {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(
            std::fs::File::create(write)
                .with_context(|| format!("creating {}", write.display()))?,
        )
    };
    client.copy_rest(&mut out)?;
    out.flush()?;
    Ok(())
}
