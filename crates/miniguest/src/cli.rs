//! Command-line interface definition. Kept free of behaviour so that the
//! xtask can render completions and the man page from it.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};
use clap_complete::engine::ArgValueCompleter;

use crate::completion::{generation_numbers, guest_names};

use crate::backend::Kind;
use crate::guest::layout::{DEFAULT_GUESTS_DIR, DEFAULT_PROFILES_DIR};

#[derive(Debug, Parser)]
#[command(
    name = "miniguest",
    version,
    about = "Lightweight, declarative NixOS guests whose program lives in the host's Nix store"
)]
pub struct Cli {
    /// Where guests are linked (one entry per guest)
    #[arg(long, global = true, env = "MINIGUEST_GUESTS_DIR", default_value = DEFAULT_GUESTS_DIR)]
    pub guests_dir: PathBuf,

    /// Where the guests' Nix profiles live
    #[arg(long, global = true, env = "MINIGUEST_PROFILES_DIR", default_value = DEFAULT_PROFILES_DIR)]
    pub profiles_dir: PathBuf,

    /// Act on this host instead of this machine: [USER@]HOST as ssh knows
    /// it (`local` is this machine). status, list and upgrade take several
    // Checked when used (remote::Target), not here: a hook ignores it.
    #[arg(
        long,
        global = true,
        env = "MINIGUEST_HOST",
        value_delimiter = ',',
        value_name = "[USER@]HOST"
    )]
    pub host: Vec<String>,

    /// install, upgrade: build on this host ([USER@]HOST), evaluating
    /// here; the output goes from there to where the guest is installed
    #[arg(
        long,
        global = true,
        env = "MINIGUEST_BUILD_HOST",
        value_name = "[USER@]HOST"
    )]
    pub build_host: Option<String>,

    /// status, list: ask the hosts this file names, one a line
    #[arg(long, global = true, value_name = "FILE")]
    pub hosts_file: Option<PathBuf>,

    /// Log what is run (-v: commands, -vv: everything)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a guest from a flake and install it as a new profile generation
    Install(InstallArgs),
    /// Rebuild guests from the flake they were installed from
    Upgrade(UpgradeArgs),
    /// Switch a guest to its previous (or a given) generation
    Rollback(RollbackArgs),
    /// List a guest's generations
    Generations(GenerationsArgs),
    /// Remove a guest and its hypervisor definition (its store paths become garbage)
    Remove(RemoveArgs),
    /// List installed guests
    List(JsonArg),
    /// Write a flake of example guests into a directory
    Template(TemplateArgs),
    /// Configure a hypervisor to run an installed guest
    Create(CreateArgs),
    /// Boot an installed guest with QEMU, console on this terminal
    Run(RunArgs),
    /// Start a defined guest through the backend it was defined in
    Start(StartArgs),
    /// Shut a guest down cleanly and wait (--force kills it)
    Stop(StopArgs),
    /// Stop a guest, then start it from its profile's current generation
    Restart(RestartArgs),
    /// Which guests run, what they booted, and which need a restart
    Status(StatusArgs),
    /// Run a command in a running guest; its output and exit status are
    /// this command's
    Exec(ExecArgs),
    /// Attach this terminal to a running guest's console
    Console(NameArg),
    /// Print a shell completion script
    Completions(CompletionsArgs),
    /// Print the man page (roff)
    #[command(hide = true)]
    Manpage,
    /// Run by hypervisors when a guest starts or stops
    #[command(hide = true)]
    Hook(HookArgs),
}

/// Nix's own flags, passed to every `nix` command a guest's build runs.
#[derive(Debug, Args, Default, Clone)]
pub struct NixFlags {
    /// Use another flake for an input (recorded: upgrades repeat it)
    #[arg(long, num_args = 2, value_names = ["INPUT", "FLAKEREF"], action = clap::ArgAction::Append)]
    pub override_input: Vec<String>,
    /// Evaluate impurely (recorded: upgrades repeat it)
    #[arg(long)]
    pub impure: bool,
    /// Set a Nix option for this command
    #[arg(long, num_args = 2, value_names = ["NAME", "VALUE"], action = clap::ArgAction::Append)]
    pub option: Vec<String>,
    /// Show build logs
    #[arg(short = 'L', long)]
    pub print_build_logs: bool,
    /// Show the trace of an evaluation error
    #[arg(long)]
    pub show_trace: bool,
    /// Use no network
    #[arg(long)]
    pub offline: bool,
    /// Refetch the flake (upgrade always does)
    #[arg(long)]
    pub refresh: bool,
    /// More arguments for Nix, after `--`
    #[arg(last = true, value_name = "NIX_ARGS")]
    pub nix_args: Vec<String>,
}

impl NixFlags {
    /// What is passed to Nix on this invocation only.
    pub fn passed(&self) -> Vec<String> {
        let mut args = Vec::new();
        for pair in self.option.chunks(2) {
            args.push("--option".to_owned());
            args.extend(pair.iter().cloned());
        }
        if self.print_build_logs {
            args.push("--print-build-logs".into());
        }
        if self.show_trace {
            args.push("--show-trace".into());
        }
        if self.offline {
            args.push("--offline".into());
        }
        args.extend(self.nix_args.iter().cloned());
        args
    }

    /// The `--override-input` pairs.
    pub fn override_inputs(&self) -> Vec<(String, String)> {
        self.override_input
            .chunks(2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect()
    }
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Guest name (default: the configuration's attribute name)
    #[arg(short, long)]
    pub name: Option<String>,
    /// Replace an installed guest (as a new generation; rollback still works)
    #[arg(short, long)]
    pub force: bool,
    /// FLAKEREF[#ATTR]: ATTR names nixosConfigurations.ATTR, or is a full attribute path
    pub source: String,
    /// Install this output, built elsewhere, rather than building SOURCE
    /// (what `--host` asks of a host)
    #[arg(long, hide = true, requires_all = ["origin", "name"], value_name = "STORE_PATH")]
    pub built: Option<PathBuf>,
    /// With --built: the flake reference recorded for upgrades, as JSON
    #[arg(long, hide = true, requires = "built", value_name = "JSON")]
    pub origin: Option<String>,
    #[command(flatten)]
    pub nix: NixFlags,
}

#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// Upgrade every imperative guest
    #[arg(long, conflicts_with = "names")]
    pub all: bool,
    #[arg(required_unless_present = "all", add = ArgValueCompleter::new(guest_names))]
    pub names: Vec<String>,
    /// Restart upgraded guests that run and need it
    #[arg(long)]
    pub restart: bool,
    /// Apply the new generation inside running guests without a reboot
    /// when only stage 2 changed (switch-to-configuration switch); restart
    /// them otherwise
    #[arg(long)]
    pub switch: bool,
    /// With --switch: refuse an upgrade that would need a restart, saying
    /// what stands in the way
    #[arg(long, requires = "switch")]
    pub no_restart: bool,
    /// With --switch or --restart: wait until the guest is ready, and roll
    /// it back (profile and guest) if it is not
    #[command(flatten)]
    pub wait: WaitArg,
    /// Print the flake references the guests were installed from, as
    /// JSON, and upgrade nothing (what `--host` asks of a host)
    #[arg(long, hide = true)]
    pub print_origins: bool,
    /// Upgrade guest NAME to this output, built elsewhere (what `--host`
    /// asks of a host; repeatable)
    #[arg(long, hide = true, value_name = "NAME=STORE_PATH")]
    pub built: Vec<String>,
    #[command(flatten)]
    pub nix: NixFlags,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[arg(add = ArgValueCompleter::new(guest_names))]
    pub name: String,
    /// Generation to switch to (default: the one before the current)
    #[arg(long, add = ArgValueCompleter::new(generation_numbers))]
    pub to: Option<u64>,
}

#[derive(Debug, Args)]
pub struct GenerationsArgs {
    #[arg(add = ArgValueCompleter::new(guest_names))]
    pub name: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct NameArg {
    #[arg(add = ArgValueCompleter::new(guest_names))]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    #[arg(add = ArgValueCompleter::new(guest_names))]
    pub name: String,
    /// Stop the guest first if it runs
    #[arg(long)]
    pub force: bool,
    /// Leave the hypervisor's definition in place
    #[arg(long)]
    pub keep_definition: bool,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    #[arg(add = ArgValueCompleter::new(guest_names))]
    pub name: String,
    /// Kill the guest instead of asking it to shut down
    #[arg(long)]
    pub force: bool,
    /// Seconds to wait for a clean shutdown
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct HookArgs {
    /// Mount (at started) or unmount (at stopped) the container's idmapped
    /// views of the store and /boot, with this id map
    #[arg(long, value_name = "UID:GID:COUNT")]
    pub idmapped_view: Option<crate::backend::container::idmap::IdMap>,
    /// started or stopped
    pub event: crate::service::hook::Event,
    #[arg(add = ArgValueCompleter::new(guest_names))]
    pub name: String,
    /// What the hypervisor adds (LXC: section and hook type)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub rest: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    #[command(flatten)]
    pub stop: StopArgs,
    /// Only if it runs and booted something else than its current generation
    #[arg(long)]
    pub if_needed: bool,
    #[command(flatten)]
    pub wait: WaitArg,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    #[arg(add = ArgValueCompleter::new(guest_names))]
    pub name: String,
    #[command(flatten)]
    pub wait: WaitArg,
}

#[derive(Debug, Args, Clone, Copy, Default)]
pub struct WaitArg {
    /// Wait until the guest says its boot has finished (its readiness
    /// command answers `running`), at most SECS (default 120); fail if it
    /// does not
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "120", require_equals = true)]
    pub wait: Option<u64>,
}

impl WaitArg {
    pub fn limit(&self) -> Option<std::time::Duration> {
        self.wait.map(std::time::Duration::from_secs)
    }
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[arg(add = ArgValueCompleter::new(guest_names))]
    pub name: String,
    /// Give up after SECS (the command goes on in the guest)
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// The command and its arguments (looked up in the guest's PATH)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Guests to report on (default: every guest)
    #[arg(add = ArgValueCompleter::new(guest_names))]
    pub names: Vec<String>,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct JsonArg {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TemplateArgs {
    pub dir: PathBuf,
}

pub use crate::backend::VirtType;

#[derive(Debug, Args)]
pub struct HypervisorOptions {
    /// Memory in MiB (default: from the guest's manifest)
    #[arg(long)]
    pub memory: Option<u64>,
    /// Virtual CPUs (default: from the guest's manifest)
    #[arg(long)]
    pub vcpus: Option<u32>,
    /// Virtualisation type (default: kvm when /dev/kvm works, else qemu)
    #[arg(long, value_enum)]
    pub virt_type: Option<VirtType>,
    /// Network: none, user, bridge=BR or network=NET (default: from the manifest)
    #[arg(long)]
    pub network: Option<String>,
    /// QEMU machine type, with its options (default: the fastest that boots
    /// every guest here: on x86_64 microvm for plain QEMU with KVM, else pc)
    #[arg(long, value_name = "TYPE[,OPTION=VALUE…]")]
    pub machine: Option<String>,
    /// Where declared volumes are kept on the host
    #[arg(
        long,
        env = "MINIGUEST_STATE_DIR",
        default_value = "/var/lib/miniguest"
    )]
    pub state_dir: PathBuf,
    /// Console log file instead of a terminal (libvirt, qemu)
    #[arg(long)]
    pub console_log: Option<PathBuf>,
    /// Let the guest share this host path although it is, contains or lies
    /// inside the Nix store, `/` or a system directory (repeatable)
    #[arg(long, value_name = "PATH")]
    pub allow_share: Vec<PathBuf>,
    /// Give the guest systemd credential NAME, read from the host file PATH
    /// when the guest starts; the guest must declare NAME (repeatable)
    #[arg(long, value_name = "NAME=PATH", value_parser = crate::backend::credentials::parse_option)]
    pub credential: Vec<crate::backend::credentials::Credential>,
    /// What of the host's store the guest sees: all of it, read-only, or
    /// only its own closure
    #[arg(long, value_enum, default_value_t)]
    pub store_view: crate::backend::store_view::StoreView,
}

impl HypervisorOptions {
    /// The plain options the backends take.
    pub fn to_spec_options(&self) -> crate::backend::SpecOptions {
        crate::backend::SpecOptions {
            memory: self.memory,
            vcpus: self.vcpus,
            virt_type: self.virt_type,
            network: self.network.clone(),
            machine: self.machine.clone(),
            state_dir: self.state_dir.clone(),
            console_log: self.console_log.clone(),
            allow_share: self.allow_share.clone(),
            credentials: self.credential.clone(),
            store_view: self.store_view,
        }
    }
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Hypervisor backend (default: libvirt for VM guests, lxc for containers)
    #[arg(short = 't', long = "type", visible_alias = "hypervisor", value_enum)]
    pub backend: Option<Kind>,
    #[arg(add = ArgValueCompleter::new(guest_names))]
    pub name: String,
    /// Apply the configuration instead of printing a command
    #[arg(long, conflicts_with_all = ["xml", "config"])]
    pub define: bool,
    /// With --define: start the guest when the host boots (libvirt, LXC)
    #[arg(long, requires = "define")]
    pub autostart: bool,
    /// Print the libvirt domain XML
    #[arg(long)]
    pub xml: bool,
    /// Print the generated configuration (domain XML, LXC config)
    #[arg(long)]
    pub config: bool,
    /// libvirt connection URI
    #[arg(
        short,
        long,
        env = "LIBVIRT_DEFAULT_URI",
        default_value = "qemu:///system"
    )]
    pub connect: String,
    /// LXC: where containers are defined (lxc-create -P; default: lxc-config lxc.lxcpath)
    #[arg(long, env = "MINIGUEST_LXCPATH")]
    pub lxcpath: Option<PathBuf>,
    /// nspawn: where --define writes the .nspawn settings (default:
    /// /etc/systemd/nspawn; on NixOS /run/systemd/nspawn)
    #[arg(long, env = "MINIGUEST_NSPAWN_DIR")]
    pub nspawn_dir: Option<PathBuf>,
    /// nspawn: where machined finds machine images (a link to the root goes there)
    #[arg(
        long,
        env = "MINIGUEST_MACHINES_DIR",
        default_value = "/var/lib/machines"
    )]
    pub machines_dir: PathBuf,
    /// nspawn: where the systemd-nspawn@NAME.service drop-in goes (default:
    /// /etc/systemd/system; on NixOS, where that is the store's,
    /// /run/systemd/system)
    #[arg(long, env = "MINIGUEST_UNIT_DIR")]
    pub unit_dir: Option<PathBuf>,
    /// LXC/nspawn: run the container's root as the host's root. The guest can
    /// then write into the host's Nix store. Never do this outside a test rig.
    #[arg(long)]
    pub unsafe_unmapped_root: bool,
    #[command(flatten)]
    pub hypervisor: HypervisorOptions,
}

impl CreateArgs {
    /// Where the backends are to keep the guest, as plain values.
    pub fn site_options(&self) -> crate::backend::SiteOptions {
        crate::backend::SiteOptions {
            libvirt_uri: self.connect.clone(),
            lxcpath: self.lxcpath.clone(),
            nspawn: crate::backend::nspawn::Location::with_defaults(
                self.nspawn_dir.clone(),
                self.machines_dir.clone(),
                self.unit_dir.clone(),
                crate::backend::host::is_nixos(),
            ),
        }
    }

    pub fn policy(&self) -> crate::backend::Policy {
        crate::backend::Policy {
            autostart: self.autostart,
            unsafe_unmapped_root: self.unsafe_unmapped_root,
        }
    }
}

impl StopArgs {
    pub fn options(&self) -> crate::service::lifecycle::StopOptions {
        crate::service::lifecycle::StopOptions {
            force: self.force,
            timeout: std::time::Duration::from_secs(self.timeout),
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[arg(add = ArgValueCompleter::new(guest_names))]
    pub name: String,
    #[command(flatten)]
    pub hypervisor: HypervisorOptions,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}

pub fn command() -> clap::Command {
    Cli::command()
}

pub fn man_page() -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(command()).render(&mut out)?;
    Ok(out)
}

pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command(), "miniguest", &mut out);
    out
}
