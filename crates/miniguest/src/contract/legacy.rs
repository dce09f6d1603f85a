//! What the first Miniguest release wrote (`miniguest-config.json`): its
//! module options verbatim, read into today's manifest.

use anyhow::{Context, Result};
use serde::Deserialize;

use super::manifest::{
    deserialize_naming_field, GuestType, Manifest, ShareFs, DEFAULT_MEMORY_MIB, DEFAULT_VCPUS,
    VERSION,
};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyConfig {
    guest_type: GuestType,
    #[serde(default)]
    qemu: Option<LegacyQemu>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyQemu {
    #[serde(default)]
    fs_type: Option<ShareFs>,
}

pub fn parse(json: &str) -> Result<Manifest> {
    let value: serde_json::Value = serde_json::from_str(json).context("not valid JSON")?;
    let legacy: LegacyConfig = deserialize_naming_field(value)?;
    Ok(Manifest {
        version: VERSION,
        guest_type: legacy.guest_type,
        store_fs: legacy.qemu.and_then(|q| q.fs_type).unwrap_or_default(),
        kernel_params: vec!["console=ttyS0".into()],
        memory_mib: DEFAULT_MEMORY_MIB,
        vcpus: DEFAULT_VCPUS,
        volumes: vec![],
        shares: vec![],
        // The original left virt-install's default network.
        interfaces: None,
        agent: false,
        credentials: vec![],
        ready_command: None,
        toplevel: None,
    })
}
