# The package set the model's NixOS sees as `pkgs`: real derivations built
# with the host's /bin/sh (these machines have no nixpkgs), with overlays
# applied the way nixpkgs applies them. `files` holds what the stand-in
# guest boots: a kernel, a static busybox and kernel modules.
{ lib, system, files, config ? { }, overlays ? [ ] }:
let
  platform = lib.systems.elaborate system;

  base = self: {
    _type = "pkgs";
    inherit lib config overlays;
    # As nixpkgs' aliases: the old name still works, with a warning.
    system = lib.warn "'system' has been renamed to/replaced by 'stdenv.hostPlatform.system'" system;
    # Like nixpkgs: nixos/lib/eval-config.nix lives under it.
    path = ./.;
    inherit files;
    stdenv = {
      hostPlatform = platform;
      buildPlatform = platform;
      isLinux = true;
    };
    __splicedPackages = self;
    appendOverlays = extra: import ./pkgs.nix { inherit lib system files config; overlays = overlays ++ extra; };
    callPackage = fn: args: lib.callPackageWith self fn args;

    runCommand = name: env: script: derivation ({
      inherit name system;
      builder = "/bin/sh";
      args = [ "-c" "export PATH=/usr/bin:/bin\nset -eu\n${script}" ];
    } // env);
    writeText = name: text: self.runCommand name { inherit text; passAsFile = [ "text" ]; } ''cp "$textPath" "$out"'';
    writeScript = name: text: self.runCommand name { inherit text; passAsFile = [ "text" ]; } ''
      cp "$textPath" "$out"
      chmod +x "$out"
    '';
    # nixpkgs' closureInfo: `registration`, the closure with each path's
    # hash and size, as `nix-store --load-db` reads it, made the way nixpkgs
    # makes it (exportReferencesGraph under structured attributes, which
    # gives each path's narHash and narSize, turned into lines by jq, less
    # jq's own last newline, which `--load-db` would read as a path).
    closureInfo = { rootPaths }: derivation {
      name = "closure-info";
      inherit system;
      __structuredAttrs = true;
      exportReferencesGraph.closure = rootPaths;
      builder = "/bin/sh";
      args = [ "-c" ''
        export PATH=/usr/bin:/bin
        set -eu
        attrs=''${NIX_ATTRS_JSON_FILE:-$NIX_BUILD_TOP/.attrs.json}
        out=$(jq -r .outputs.out "$attrs")
        mkdir -p "$out"
        jq -r '.closure | map([.path, .narHash, (.narSize | tostring), "", (.references | length | tostring)] + .references) | add | map("\(.)\n") | add' "$attrs" | head -n -1 > "$out/registration"
      '' ];
    };

    # The stand-in's "kernel package" and tools.
    # With a link for each applet, as a NixOS system's sw/bin has each
    # program: commands run in the guest (`miniguest exec`) find them.
    busybox = self.runCommand "busybox" { } ''
      mkdir -p $out/bin
      cp ${files.busybox} $out/bin/busybox
      for applet in $($out/bin/busybox --list); do
        [ -e "$out/bin/$applet" ] || ln -s busybox "$out/bin/$applet"
      done
    '';
    # QEMU's guest agent, as nixpkgs' qemu_kvm.ga: the real qemu-ga, with
    # the libraries it was linked against and their loader beside it.
    qemu_kvm.ga = self.runCommand "qemu-ga" { } ''
      mkdir -p $out/bin
      cp -r ${files.qemuGa}/lib $out/lib
      cp ${files.qemuGa}/qemu-ga $out/lib/qemu-ga
      printf '#!${self.busybox}/bin/sh\nexec %s --library-path %s %s "$@"\n' \
        "$out/lib/ld-linux-x86-64.so.2" "$out/lib" "$out/lib/qemu-ga" > $out/bin/qemu-ga
      chmod +x $out/bin/qemu-ga
    '';
    # Debian 13's programs as a Nix package holds them: in the store, with
    # their loader and libraries beside them (patchelf points each ELF
    # file at them, as Nix's own fixup does).
    trixiePackage = name: paths: self.runCommand name { } ''
      mkdir -p $out/lib
      for p in ${lib.concatStringsSep " " paths}; do
        mkdir -p "$out/$(dirname "$p")"
        cp -a "${files.trixie}/$p" "$out/$p"
      done
      cp -a ${files.trixie}/lib/. $out/lib/
      chmod -R u+w $out
      find $out -type f | while read -r f; do
        case "$(head -c 4 "$f" | od -An -c | tr -d ' ')" in
          177ELF) ;;
          *) continue ;;
        esac
        [ "$f" != $out/lib/ld-linux-x86-64.so.2 ] || continue
        # Programs (those with an interpreter) get the loader too.
        if patchelf --print-interpreter "$f" >/dev/null 2>&1; then
          patchelf --set-interpreter $out/lib/ld-linux-x86-64.so.2 "$f"
        fi
        patchelf --set-rpath $out/lib "$f"
      done
    '';
    # With the kmod and util-linux it was built with, as nixpkgs' systemd
    # passes them on (systemd/initrd.nix takes them from there).
    systemd = self.trixiePackage "systemd-trixie" [ "lib/systemd" "bin/systemctl" "bin/journalctl"
      "bin/systemd-creds" "bin/systemd-tmpfiles" "bin/systemd-escape" "bin/systemd-run"
      "bin/busctl" "bin/udevadm" "bin/halt" "bin/poweroff" "bin/reboot" "bin/shutdown" ] // {
      inherit (self) kmod util-linux;
    };
    kmod = self.trixiePackage "kmod-trixie" [ "bin/kmod" "bin/modprobe" "bin/insmod" "bin/rmmod"
      "bin/lsmod" "bin/modinfo" "bin/depmod" ];
    util-linux = self.trixiePackage "util-linux-trixie" [ "bin/mount" "bin/umount" "bin/agetty" "bin/setpriv" "bin/sulogin" ];
    # Debian built sudo for /usr/libexec/sudo, where the systemd
    # stand-in's stage 2 links these plugins.
    sudo = self.trixiePackage "sudo-trixie" [ "bin/sudo" "bin/sudoedit" "libexec/sudo" ];
    # Debian built OpenSSH for /usr/lib/openssh (sshd-session, sshd-auth)
    # and /run/sshd (privilege separation); the openssh model links and
    # makes them.
    openssh = self.trixiePackage "openssh-trixie" [ "bin/sshd" "bin/ssh-keygen" "libexec/openssh" "etc/ssh/moduli" ];
    pam = self.trixiePackage "linux-pam-trixie" [ "lib/security" "bin/unix_chkpwd" ];
    standinKernel = self.runCommand "linux-standin" { } "cp ${files.kernel} $out";
    standinModules = files.modules;
    # Debian 13's Nix 2.26: the real one, for what a guest runs of Nix.
    nix = self.trixiePackage "nix-trixie" [ "bin/nix" "bin/nix-store" "bin/nix-env" ];
    libvirt = self.runCommand "libvirt-model" { } "mkdir -p $out/bin";
    lxc = self.runCommand "lxc-model" { } "mkdir -p $out/bin";
    virtiofsd = self.runCommand "virtiofsd-model" { } "mkdir -p $out/bin";
    pkg-config = self.runCommand "pkg-config-model" { } "mkdir -p $out";
    installShellFiles = self.runCommand "install-shell-files-model" { } "mkdir -p $out";
    # Evaluates a Rust package's arguments; nothing is compiled.
    rustPlatform.buildRustPackage = args:
      self.runCommand "${args.pname}-${args.version}" { } "mkdir -p $out/bin" // {
        passthru = args;
        inherit (args) postInstall;
        meta = args.meta or { };
      };

    # NixOS tests as nixos/lib/testing evaluates them: every node is a
    # NixOS configuration whose pkgs are this set, made read-only
    # (nixos/lib/testing/nodes.nix sets node.pkgs, which imports
    # misc/nixpkgs/read-only.nix).
    testers.runNixOSTest = test:
      let
        t = if lib.isFunction test then test { pkgs = self; } else test;
        nodes = lib.mapAttrs
          (name: module: import ./eval-config.nix {
            inherit lib;
            readOnlyPkgs = self;
            modules = [ ./test-node.nix module (t.defaults or { }) { networking.hostName = lib.mkDefault name; } ];
          })
          (t.nodes or { });
        toplevels = lib.mapAttrs (_: n: n.config.system.build.toplevel) nodes;
        script = if lib.isFunction t.testScript then t.testScript { nodes = lib.mapAttrs (_: n: n.config) nodes; } else t.testScript;
      in
      self.runCommand "vm-test-run-${t.name}" ({ inherit script; } // toplevels) "touch $out";
  };
in
lib.fix (lib.foldl' (lib.flip lib.extends) base overlays)
