# The miniguest CLI, built from this repository's Cargo.lock, with its man
# page and shell completions.
{ lib, stdenv, rustPlatform, pkg-config, installShellFiles, libvirt }:
let
  cargoToml = lib.importTOML ../Cargo.toml;
in
rustPlatform.buildRustPackage {
  pname = "miniguest";
  inherit (cargoToml.workspace.package) version;
  src = lib.cleanSourceWith {
    src = ../.;
    filter = path: type: !(lib.hasSuffix "/target" path);
  };
  cargoLock.lockFile = ../Cargo.lock;
  cargoBuildFlags = [ "--package" "miniguest" ];
  nativeBuildInputs = [ pkg-config installShellFiles ];
  buildInputs = [ libvirt ];
  # The tests need a Nix store, hypervisors and root; they run in CI.
  doCheck = false;
  # The man page and completions come from the built program, which only
  # runs where the build does: a cross build goes without them.
  # libvirt's QEMU hook, for hosts whose libvirt takes hooks from a
  # configuration (NixOS: virtualisation.libvirtd.hooks.qemu).
  postInstall = ''
    install -Dm755 crates/miniguest/src/backend/libvirt/qemu-hook.sh $out/libexec/miniguest/libvirt-qemu-hook
  '' + lib.optionalString (stdenv.buildPlatform.canExecute stdenv.hostPlatform) ''
    $out/bin/miniguest manpage > miniguest.1
    installManPage miniguest.1
    installShellCompletion --cmd miniguest \
      --bash <($out/bin/miniguest completions bash) \
      --zsh <($out/bin/miniguest completions zsh) \
      --fish <($out/bin/miniguest completions fish)
  '';
  meta = {
    description = "Lightweight, declarative NixOS guests whose program lives in the host's Nix store";
    license = lib.licenses.gpl3Plus;
    platforms = lib.platforms.linux;
    mainProgram = "miniguest";
  };
}
