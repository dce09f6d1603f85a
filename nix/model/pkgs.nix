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
    # What nixpkgs' closureInfo provides: `registration`, the closure in the
    # format `nix-store --load-db` reads.
    closureInfo = { rootPaths }: self.runCommand "closure-info" {
      exportReferencesGraph = lib.concatLists (lib.imap0 (i: p: [ "closure-${toString i}" p ]) rootPaths);
    } ''
      mkdir -p $out
      cat closure-* > $out/registration
    '';

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
    standinKernel = self.runCommand "linux-standin" { } "cp ${files.kernel} $out";
    standinModules = files.modules;
    nix = self.runCommand "nix-model" { } "mkdir -p $out/bin";
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
