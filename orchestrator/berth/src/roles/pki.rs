//! `berth pki`: the cluster's certificates for real deployments (`berth up` makes
//! its own): `init` makes the CA and the control plane's certificates, `issue` a
//! certificate for a user, a node or a server, `kubeconfig` a kubeconfig holding a
//! client certificate.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use berth_pki::kubeconfig::Kubeconfig;
use berth_pki::layout::Layout;
use berth_pki::{Ca, LEAF_VALIDITY, Profile, Usage};

#[derive(Parser, Debug)]
#[command(name = "berth pki", about = "The cluster's CA and certificates")]
pub struct PkiFlags {
    #[command(subcommand)]
    command: PkiCommand,
}

#[derive(Subcommand, Debug)]
enum PkiCommand {
    /// Make the CA (once) and every control-plane certificate that is missing:
    /// apiserver, apiserver-kubelet-client, admin, store/server, store/peer,
    /// store/client. Existing ones are kept.
    Init {
        /// The certificate directory.
        #[arg(long)]
        dir: PathBuf,
        /// A further DNS name or IP address the servers' certificates are valid for;
        /// repeatable (localhost, 127.0.0.1 and the kubernetes Service's names always are).
        #[arg(long = "host")]
        hosts: Vec<String>,
    },
    /// Issue `<dir>/<name>.crt` and `.key`, signed by the directory's CA.
    Issue {
        #[arg(long)]
        dir: PathBuf,
        /// The files' name in the directory (`users/alice` makes users/alice.crt).
        #[arg(long)]
        name: String,
        /// The subject's common name: a client certificate's user.
        #[arg(long)]
        cn: String,
        /// The subject's organization: a client certificate's group.
        #[arg(long)]
        org: Option<String>,
        /// What it is for: client (default), server, or both.
        #[arg(long, default_value = "client", value_parser = ["client", "server", "both"])]
        usage: String,
        /// A DNS name or IP address a server certificate is valid for; repeatable.
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Days of validity.
        #[arg(long, default_value_t = LEAF_VALIDITY.whole_days())]
        days: i64,
    },
    /// Write a kubeconfig for the client certificate `<dir>/<name>.crt`.
    Kubeconfig {
        #[arg(long)]
        dir: PathBuf,
        /// The client certificate's name in the directory (default: admin).
        #[arg(long, default_value = "admin")]
        name: String,
        /// The API server's URL.
        #[arg(long, default_value = "https://127.0.0.1:6443")]
        server: String,
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(args: &[String]) -> ExitCode {
    let flags: PkiFlags = match super::parse_flags("pki", args) {
        Ok(f) => f,
        Err(code) => return code,
    };
    match execute(flags.command) {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            berth_cli::err_line(format_args!("berth pki: {e}"));
            ExitCode::FAILURE
        }
    }
}

fn execute(command: PkiCommand) -> Result<String, String> {
    match command {
        PkiCommand::Init { dir, hosts } => {
            Layout::new(&dir).init(&hosts).map_err(|e| e.to_string())?;
            Ok(format!("the cluster's certificates are in {}", dir.display()))
        }
        PkiCommand::Issue {
            dir,
            name,
            cn,
            org,
            usage,
            hosts,
            days,
        } => {
            if days <= 0 {
                return Err(format!("--days {days}: must be at least 1"));
            }
            let ca = Ca::read(&dir).map_err(|e| e.to_string())?;
            let profile = Profile {
                common_name: cn,
                organizations: org.into_iter().collect(),
                hosts,
                usage: match usage.as_str() {
                    "server" => Usage::Server,
                    "both" => Usage::ServerAndClient,
                    _ => Usage::Client,
                },
                validity: time::Duration::days(days),
            };
            let identity = ca.issue(&profile).map_err(|e| e.to_string())?;
            let path = dir.join(&name);
            let parent = path.parent().map(PathBuf::from).unwrap_or_else(|| dir.clone());
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            identity.write(&parent, &file).map_err(|e| e.to_string())?;
            Ok(format!("wrote {}.crt and {}.key", path.display(), path.display()))
        }
        PkiCommand::Kubeconfig { dir, name, server, out } => {
            let layout = Layout::new(&dir);
            let ca = Ca::read(&dir).map_err(|e| e.to_string())?;
            let identity = layout.read(&name).map_err(|e| e.to_string())?;
            let user = berth_pki::subject_of_pem(&identity.cert_pem)
                .map_err(|e| format!("{name}.crt: {e}"))?
                .common_name;
            Kubeconfig::for_identity("berth", &server, &ca.identity.cert_pem, &user, &identity)
                .write(&out)
                .map_err(|e| e.to_string())?;
            Ok(format!("wrote {} for user {user:?}", out.display()))
        }
    }
}
