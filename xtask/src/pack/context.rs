//! What does not change between packs for one architecture and kernel: the kernel (fetched
//! once) and its module index (read once, about a second), shared by every initramfs a
//! process makes (the scenarios, the benchmark, a bundle).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Result;

use crate::fetch::kernel::{self, Kernel, KernelArgs};
use crate::pack::modinfo::ModIndex;
use crate::tools::arch::Arch;

/// What does not change between boots of one architecture and kernel: made once per process.
#[derive(Debug)]
pub struct Context {
    pub arch: Arch,
    pub kernel: Kernel,
    pub index: ModIndex,
}

/// The [`Context`] for `arch` and `kernel`: made (kernel fetch, module index) on the first
/// call, shared afterwards.
pub fn context(arch: Arch, kernel: &KernelArgs) -> Result<Arc<Context>> {
    type Cache = Mutex<HashMap<(Arch, KernelArgs), Arc<Context>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (arch, kernel.clone());
    if let Some(context) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(context);
    }
    let resolved = kernel::resolve(arch, kernel)?;
    let index = ModIndex::load(&resolved.modules_dir)?;
    let context = Arc::new(Context {
        arch,
        kernel: resolved,
        index,
    });
    if let Ok(mut cache) = cache.lock() {
        cache.insert(key, context.clone());
    }
    Ok(context)
}
