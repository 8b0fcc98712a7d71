//! The order to load modules in: each after what `modules.dep` says it needs, `modules.softdep`'s
//! `pre:` before and `post:` after, each once, cycles broken; and the levels of that order
//! whose modules may load at the same time. Pure: a function of the [`ModuleIndex`] and the
//! names asked for (the loader in `devices::modules` carries it out). A child of `modindex`,
//! as the index's second half: it reads the index's tables directly.

use std::collections::{BTreeMap, BTreeSet};

use super::{normalize, ModuleIndex};

/// One module to load, after everything it depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadStep {
    /// Normalised module name.
    pub name: String,
    /// Path relative to the modules directory.
    pub path: String,
    /// The module that depends on this one, or empty when it was asked for directly.
    pub requested_by: String,
}

/// A module that was asked for (directly or as a dependency) but is not in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// Normalised module name.
    pub name: String,
    /// The module that depends on it, or empty when it was asked for directly.
    pub requested_by: String,
}

/// What to do to get a list of modules loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadPlan {
    /// Modules to load, in order: every module after its dependencies.
    pub steps: Vec<LoadStep>,
    /// Requested modules that are built into the kernel: nothing to load.
    pub builtin: Vec<String>,
    /// Modules that cannot be found; dependents are still planned (loading them may fail).
    pub missing: Vec<Missing>,
}

impl ModuleIndex {
    /// The order in which to load `names` and everything they depend on.
    ///
    /// Dependencies are resolved from each module's own `modules.dep` list (not from the file's
    /// line order), each module appears once, a dependency cycle is broken where it closes
    /// (the module that closes it is simply not waited for), names are compared after
    /// [`normalize`]. Soft dependencies (`modules.softdep`) are honoured as modprobe does:
    /// `pre:` modules before the module, `post:` ones after it; a soft dependency that is not
    /// in the index is skipped without a word (it is a wish, not a need).
    pub fn load_order(&self, names: &[String]) -> LoadPlan {
        let mut plan = LoadPlan::default();
        let mut seen = BTreeSet::new();
        for name in names {
            self.plan_module(normalize(name), &mut seen, &mut plan);
        }
        plan
    }

    /// Depth-first post-order walk with an explicit stack, so a deep or hostile dependency
    /// chain cannot overflow PID 1's stack. A `seen` module whose step is not yet written is
    /// on the current path: meeting it again is a cycle, which is broken by skipping it.
    fn plan_module(&self, root: String, seen: &mut BTreeSet<String>, plan: &mut LoadPlan) {
        // (name, requested_by, dependencies already pushed, soft: skip quietly when unknown)
        let mut stack = vec![(root, String::new(), false, false)];
        while let Some((name, requested_by, expanded, soft)) = stack.pop() {
            if expanded {
                if let Some(m) = self.modules.get(&name) {
                    plan.steps.push(LoadStep {
                        name,
                        path: m.path.clone(),
                        requested_by,
                    });
                }
                continue;
            }
            if soft && !self.modules.contains_key(&name) && !self.builtin.contains(&name) {
                continue;
            }
            if !seen.insert(name.clone()) {
                continue;
            }
            if self.builtin.contains(&name) {
                plan.builtin.push(name);
                continue;
            }
            let Some(module) = self.modules.get(&name) else {
                plan.missing.push(Missing { name, requested_by });
                continue;
            };
            let (pre, post) = self
                .softdeps
                .get(&name)
                .map(|(pre, post)| (pre.as_slice(), post.as_slice()))
                .unwrap_or_default();
            // A stack: pushed last is planned first. Order: pre, deps, the module, post.
            for dep in post.iter().rev() {
                stack.push((dep.clone(), name.clone(), false, true));
            }
            stack.push((name.clone(), requested_by, true, false));
            for dep in module.deps.iter().rev() {
                stack.push((dep.clone(), name.clone(), false, false));
            }
            for dep in pre.iter().rev() {
                stack.push((dep.clone(), name.clone(), false, true));
            }
        }
    }

    /// The steps of `plan` grouped in levels that can load in parallel: every module's level
    /// is after the levels of all the modules it must follow (its `modules.dep` entries, its
    /// `pre:` softdeps, and the modules that name it `post:`) that the plan loads before it.
    /// Each level keeps the plan's order; indexes are into `plan.steps`.
    pub fn levels(&self, plan: &LoadPlan) -> Vec<Vec<usize>> {
        let mut after: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for step in &plan.steps {
            let waits = after.entry(step.name.as_str()).or_default();
            if let Some(m) = self.modules.get(&step.name) {
                waits.extend(m.deps.iter().map(String::as_str));
            }
            if let Some((pre, post)) = self.softdeps.get(&step.name) {
                waits.extend(pre.iter().map(String::as_str));
                for p in post {
                    after
                        .entry(p.as_str())
                        .or_default()
                        .push(step.name.as_str());
                }
            }
        }
        let mut level_of: BTreeMap<&str, usize> = BTreeMap::new();
        let mut levels: Vec<Vec<usize>> = Vec::new();
        for (i, step) in plan.steps.iter().enumerate() {
            // only modules planned earlier count: a later one closes a cycle
            let level = after
                .get(step.name.as_str())
                .into_iter()
                .flatten()
                .filter_map(|dep| level_of.get(dep).map(|l| l + 1))
                .max()
                .unwrap_or(0);
            level_of.insert(step.name.as_str(), level);
            while levels.len() <= level {
                levels.push(Vec::new());
            }
            if let Some(slot) = levels.get_mut(level) {
                slot.push(i);
            }
        }
        levels
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::modindex::tests::{index, strings};

    fn step_names(plan: &LoadPlan) -> Vec<&str> {
        plan.steps.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn load_orders() {
        let idx = index();
        // (requested, expected steps, builtin, missing)
        type Names = &'static [&'static str];
        let cases: &[(Names, Names, Names, Names)] = &[
            (
                &["virtio_blk"],
                &["virtio", "virtio_ring", "virtio_blk"],
                &[],
                &[],
            ),
            (
                &["virtio-pci", "virtio_blk"],
                &[
                    "virtio_pci_modern_dev",
                    "virtio_pci_legacy_dev",
                    "virtio",
                    "virtio_ring",
                    "virtio_pci",
                    "virtio_blk",
                ],
                &[],
                &[],
            ),
            (&["vfat", "fat", "vfat"], &["fat", "vfat"], &[], &[]),
            (&["fat", "vfat"], &["fat", "vfat"], &[], &[]),
            (&["ext4", "vfat", "ext4"], &["fat", "vfat"], &["ext4"], &[]),
            (&["nonesuch", "vfat"], &["fat", "vfat"], &[], &["nonesuch"]),
            (&["needs_ghost"], &["needs_ghost"], &[], &["ghost"]),
            // cycle a -> b -> c -> a: broken, each once, no hang
            (&["a"], &["c", "b", "a"], &[], &[]),
            (
                &["needs_builtin"],
                &["c", "b", "a", "needs_builtin"],
                &["ext4"],
                &[],
            ),
            (&["self"], &["self"], &[], &[]),
            (&[], &[], &[], &[]),
        ];
        for (req, steps, builtin, missing) in cases {
            let plan = idx.load_order(&strings(req));
            assert_eq!(step_names(&plan), steps.to_vec(), "{req:?}");
            assert_eq!(plan.builtin, strings(builtin), "{req:?}");
            let missing_names: Vec<&str> = plan.missing.iter().map(|m| m.name.as_str()).collect();
            assert_eq!(missing_names, missing.to_vec(), "{req:?}");
        }
    }

    #[test]
    fn requested_by_and_paths_in_steps() {
        let plan = index().load_order(&strings(&["virtio_blk", "needs_ghost"]));
        let got: Vec<(&str, &str, &str)> = plan
            .steps
            .iter()
            .map(|s| (s.name.as_str(), s.path.as_str(), s.requested_by.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("virtio", "kernel/drivers/virtio/virtio.ko", "virtio_blk"),
                (
                    "virtio_ring",
                    "kernel/drivers/virtio/virtio_ring.ko",
                    "virtio_blk"
                ),
                ("virtio_blk", "kernel/drivers/block/virtio_blk.ko", ""),
                ("needs_ghost", "kernel/x/needs_ghost.ko", ""),
            ]
        );
        assert_eq!(
            plan.missing,
            vec![Missing {
                name: "ghost".into(),
                requested_by: "needs_ghost".into()
            }]
        );
    }

    #[test]
    fn deep_chain_does_not_recurse() {
        let mut dep = String::new();
        for i in 0..20_000 {
            dep.push_str(&format!("m{i}.ko: m{}.ko\n", i + 1));
        }
        dep.push_str("m20000.ko:\n");
        let idx = ModuleIndex::parse(&dep, "", "");
        let plan = idx.load_order(&strings(&["m0"]));
        assert_eq!(plan.steps.len(), 20_001);
        assert_eq!(plan.steps.first().map(|s| s.name.as_str()), Some("m20000"));
        assert_eq!(plan.steps.last().map(|s| s.name.as_str()), Some("m0"));
    }

    #[test]
    fn softdeps_pre_before_post_after() {
        let idx = ModuleIndex::parse(
            "a.ko: b.ko\nb.ko:\ncrc.ko:\nhelper.ko:\nlate.ko: a.ko\nloop.ko:\n",
            "",
            "",
        )
        .with_softdeps(
            "# Soft dependencies extracted from modules themselves.\n\
             softdep a pre: crc ghost post: late helper\n\
             softdep late pre: a\n\
             softdep loop pre: loop post: loop\n\
             nonsense\n",
        );
        let plan = idx.load_order(&strings(&["a"]));
        assert_eq!(step_names(&plan), ["crc", "b", "a", "late", "helper"]);
        // a missing softdep is a wish, not a need
        assert!(plan.missing.is_empty(), "{:?}", plan.missing);
        assert_eq!(step_names(&idx.load_order(&strings(&["loop"]))), ["loop"]);
        assert_eq!(idx.warnings().len(), 1);
        assert_eq!(
            idx.levels(&plan),
            vec![vec![0, 1], vec![2], vec![3, 4]],
            "crc and b first; a; then its post: softdeps"
        );
    }

    #[test]
    fn levels_of_the_virtio_fat_chain() {
        let idx = index();
        let plan = idx.load_order(&strings(&["virtio_pci", "virtio_blk", "vfat", "nls_cp437"]));
        let levels: Vec<Vec<&str>> = idx
            .levels(&plan)
            .iter()
            .map(|l| l.iter().map(|&i| plan.steps[i].name.as_str()).collect())
            .collect();
        assert_eq!(
            levels,
            [
                vec![
                    "virtio_pci_modern_dev",
                    "virtio_pci_legacy_dev",
                    "virtio",
                    "virtio_ring",
                    "fat",
                    "nls_cp437"
                ],
                vec!["virtio_pci", "virtio_blk", "vfat"],
            ]
        );
        // a cycle: a -> b -> c -> a; the plan is c, b, a and each waits for the one before
        let plan = idx.load_order(&strings(&["a"]));
        assert_eq!(step_names(&plan), ["c", "b", "a"]);
        assert_eq!(idx.levels(&plan), vec![vec![0], vec![1], vec![2]]);
        assert_eq!(idx.levels(&LoadPlan::default()), Vec::<Vec<usize>>::new());
    }
}
