# The guest output contract, Nix side. docs/contract.md describes it; the
# Rust side is crates/miniguest/src/manifest.rs, and the test suite evaluates
# this file to check that the two agree. Builtins only, so it evaluates
# without nixpkgs.
rec {
  version = 1;

  # Paths inside a guest output, relative to its root.
  layout = {
    manifest = "miniguest.json";
    legacyManifest = "miniguest-config.json";
    kernel = "kernel";
    initrd = "initrd";
    bootDir = "boot";
    init = "boot/init";
    registration = "boot/nix-path-registration";
    # virtio tags of the two read-only shares.
    storeTag = "nix-store";
    bootTag = "boot";
  };

  defaults = {
    guestType = "qemu";
    storeFs = "9p";
    memoryMiB = 1024;
    vcpus = 1;
  };

  guestTypes = [ "qemu" "lxc" ];
  storeFsTypes = [ "9p" "virtiofs" ];
  interfaceTypes = [ "user" "bridge" "network" ];

  # Kernel modules a VM guest's initrd loads to mount the shares.
  initrdModules = {
    "9p" = [ "virtio_pci" "9pnet_virtio" "9p" "virtio_blk" "virtio_net" ];
    virtiofs = [ "virtio_pci" "virtiofs" "virtio_blk" "virtio_net" ];
  };

  # What a VM guest's initrd loads for the QEMU guest agent's port.
  agentModules = [ "virtio_console" ];
  # The port's name, which qemu-ga opens.
  agentPort = "org.qemu.guest_agent.0";
  # What a VM guest's initrd loads to read systemd credentials from QEMU's
  # fw_cfg (systemd imports them from its sysfs directory).
  credentialModules = [ "qemu_fw_cfg" ];
  # Where a VM's hypervisor puts credential NAME (a fw_cfg file name), and
  # where a container's systemd finds its credentials: the directory
  # $CREDENTIALS_DIRECTORY names, as systemd-nspawn passes them.
  credentialFwCfgPrefix = "opt/io.systemd.credentials/";
  containerCredentialsDir = "/run/host/credentials";
  # NixOS's word on its boot: running, degraded, or not yet.
  defaultReadyCommand = [ "systemctl" "is-system-running" "--wait" ];

  # Mount options for the shares. Only the read-only store also gets
  # storeMountOptions (cache=loose): a writable share cached loosely would
  # show the guest stale data.
  mountOptions = {
    "9p" = [ "trans=virtio" "version=9p2000.L" "msize=512000" ];
    virtiofs = [ ];
  };
  storeMountOptions = {
    "9p" = [ "cache=loose" ];
    virtiofs = [ ];
  };

  # The module each share type needs loaded before it mounts (systemd
  # stage 1 orders the mount after modprobe@MODULE.service).
  shareModule = { "9p" = "9pnet_virtio"; virtiofs = "virtiofs"; };

  # The rules of the manifest's values, written once: the guest and host
  # modules check them at evaluation (`valid`), and the CLI's checked
  # values (crates/miniguest/src/contract/values.rs) are tested against
  # these limits and patterns.
  limits = {
    # A volume's name is its virtio-blk serial, which holds 20 bytes.
    volumeName = 20;
    # A share's tag is a virtio-9p or virtiofs tag, which holds 36.
    shareTag = 36;
    # Linux interface names: IFNAMSIZ - 1.
    bridge = 15;
    network = 64;
    fsType = 16;
    guestName = 63;
    # A credential's name ends a fw_cfg file name, which holds 55 bytes
    # after credentialFwCfgPrefix's 27.
    credentialName = 28;
    # Largest sizeMiB whose byte count fits in 64 bits.
    sizeMiB = 17592186044415;
  };
  patterns = {
    # Volume names and share tags.
    name = "[A-Za-z0-9_-]+";
    # systemd credential names: a file name, not hidden.
    credentialName = "[A-Za-z0-9][A-Za-z0-9._-]*";
    # Bridges and libvirt networks.
    objectName = "[A-Za-z0-9_][A-Za-z0-9_.-]*";
    mac = "([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}";
    fsType = "[a-z0-9]+";
    # A guest's name is a DNS label (a libvirt domain, an LXC container, an
    # nspawn machine and a NixOS networking.hostName) …
    guestName = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
    # … with nothing Nix would read as a generation of another profile.
    generationLink = ".*-[0-9]+-link.*";
  };
  namePattern = patterns.name;
  reservedTags = [ layout.storeTag layout.bootTag ];
  defaultVolumeFsType = "ext4";

  valid =
    let
      matches = pattern: s: builtins.match pattern s != null;
      short = max: s: builtins.stringLength s <= max;
      steps = p: builtins.filter (s: builtins.isString s && s != "") (builtins.split "/" p);
      absolute = p: builtins.substring 0 1 p == "/";
      # No control characters: they would end a line in a config file.
      plain = s: matches "[^[:cntrl:]]*" s;
    in
    rec {
      volumeName = n: matches patterns.name n && short limits.volumeName n && !(builtins.elem n reservedTags);
      shareTag = n: matches patterns.name n && short limits.shareTag n && !(builtins.elem n reservedTags);
      # Absolute, not the guest's root, and no step that climbs out of it.
      mountPoint = p: plain p && absolute p && steps p != [ ]
        && !(builtins.any (s: s == "." || s == "..") (steps p));
      hostPath = p: plain p && absolute p && !(builtins.elem ".." (steps p));
      mac = matches patterns.mac;
      bridge = n: matches patterns.objectName n && short limits.bridge n;
      network = n: matches patterns.objectName n && short limits.network n;
      fsType = t: matches patterns.fsType t && short limits.fsType t;
      credentialName = n: matches patterns.credentialName n && short limits.credentialName n;
      guestName = n: matches patterns.guestName n && !(matches patterns.generationLink n);
    };

  # The backends a guest can be defined in (the host module's `backend`);
  # plain QEMU keeps no definition.
  definableBackends = [ "libvirt" "lxc" "nspawn" ];

  # Where a declared volume appears in a VM guest.
  volumeDevice = name: "/dev/disk/by-id/virtio-${name}";

  # Builds the manifest from values shaped like the guest module's
  # `boot.miniguest` options. Only guestType is required.
  mkManifest = cfg:
    let
      get = name: default: if cfg ? ${name} then cfg.${name} else default;
      volumes = get "volumes" { };
      shares = get "shares" { };
    in
    {
      inherit version;
      guestType = get "guestType" defaults.guestType;
      storeFs = if cfg ? qemu && cfg.qemu ? fsType then cfg.qemu.fsType else defaults.storeFs;
      kernelParams = get "kernelParams" [ ];
      memoryMiB = get "memoryMiB" defaults.memoryMiB;
      vcpus = get "vcpus" defaults.vcpus;
      volumes = map
        (name: {
          inherit name;
          inherit (volumes.${name}) mountPoint sizeMiB;
          fsType = volumes.${name}.fsType or defaultVolumeFsType;
        })
        (builtins.attrNames volumes);
      shares = map
        (tag: {
          inherit tag;
          inherit (shares.${tag}) source mountPoint;
          readOnly = shares.${tag}.readOnly or false;
        })
        (builtins.attrNames shares);
      agent = get "agent" false;
      # Names only: the host supplies each one's source when it defines
      # the guest.
      credentials = get "credentials" [ ];
      readyCommand = get "readyCommand" null;
      toplevel = get "toplevel" null;
      # null: the backend's default network; [ ]: none.
      interfaces =
        let ifs = get "interfaces" null; in
        if ifs == null then null else map
          (i: {
            inherit (i) type;
            source = i.source or null;
            mac = i.mac or null;
            forwardPorts = map
              (p: {
                proto = p.proto or "tcp";
                address = p.address or "127.0.0.1";
                inherit (p) host guest;
              })
              (i.forwardPorts or [ ]);
          })
          ifs;
    };

  # POSIX shell that lays out $out from the environment variables
  # init, registration and manifestFile, plus kernel and initrd (empty for
  # containers). Both the NixOS module and the test stand-in run it.
  assemble = ''
    mkdir -p "$out/${layout.bootDir}"
    ln -s "$init" "$out/${layout.init}"
    cp "$registration" "$out/${layout.registration}"
    cp "$manifestFile" "$out/${layout.manifest}"
    if [ -n "$kernel" ]; then
      ln -s "$kernel" "$out/${layout.kernel}"
      ln -s "$initrd" "$out/${layout.initrd}"
    fi
  '';
}
