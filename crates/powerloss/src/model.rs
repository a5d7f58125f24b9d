//! The file system as the recorded operations change it, what of it is durable at each point,
//! and the crash states each persistence model allows.
//!
//! # The models
//! - [`Model::Ext4Ordered`] — ext4 with `data=ordered` (its default): metadata changes reach
//!   the journal in the order they were made, and a file's data is written before the journal
//!   transaction that commits its metadata, so a crash leaves the state after some prefix of the
//!   operations. One exception is modelled: with delayed allocation, a file written and not
//!   fsynced may come back empty (its size committed, its blocks not yet allocated; the
//!   "zero-length file" reports of 2009), except when it was renamed over another file, where
//!   `auto_da_alloc` flushes it first. (Documentation/admin-guide/ext4.rst: `data=ordered`,
//!   `auto_da_alloc`.)
//! - [`Model::PosixWeak`] — the weakest behaviour POSIX allows (`fsync` in IEEE 1003.1-2017;
//!   the ALICE paper's "abstract persistence model" at its weakest): data not fsynced may be
//!   lost, and any prefix of a file's unsynced writes may survive; a directory entry (create,
//!   rename, unlink, link, mkdir) persists only when its folder is fsynced, and those of a
//!   folder not fsynced may be lost or persist in any combination; an `fsync` of a file
//!   persists its data and mode (not its name); an `fsync` of a folder persists its entries; a
//!   rename is atomic (old or new, never neither) and persists with its folder's fsync.
//!
//! # Bounds (as ALICE bounds its search)
//! At each crash point (after each operation) the weak model gives: everything durable only;
//! every subset of the not-yet-durable entry changes when there are at most
//! [`MAX_ENTRY_SUBSET`] of them (else none, all, each prefix and all-but-one), with the data as
//! written; and, with every entry change applied, each file's unsynced data cut back to each
//! earlier point, one file at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use crate::trace::Op;

/// At most this many pending entry changes are combined in every subset.
pub const MAX_ENTRY_SUBSET: usize = 4;

/// A persistence model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// ext4 with `data=ordered`.
    Ext4Ordered,
    /// The weakest persistence POSIX allows.
    PosixWeak,
}

impl Model {
    /// The model's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Model::Ext4Ordered => "ext4 data=ordered",
            Model::PosixWeak => "POSIX weakest",
        }
    }
}

/// A file or a folder.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Node {
    /// A file: its bytes and mode.
    File {
        /// The content.
        data: Vec<u8>,
        /// The permission bits.
        mode: u32,
    },
    /// A folder and its mode.
    Folder {
        /// The permission bits.
        mode: u32,
    },
}

/// A file tree: relative path → node. Folders are listed too.
pub type Tree = BTreeMap<PathBuf, Node>;

type Inode = usize;

#[derive(Clone, Debug)]
struct InodeState {
    folder: bool,
    data: Vec<u8>,
    mode: u32,
    durable_data: Vec<u8>,
    durable_mode: u32,
    /// The data after each write since the last fsync (the last one is `data`).
    unsynced: Vec<Vec<u8>>,
    /// Renamed over another file since its last fsync (ext4's `auto_da_alloc` flushes it).
    renamed_over: bool,
}

/// One change of folder entries that is not durable yet: `(folder, name, new target)` pairs
/// applied together (a rename is two: the old name gone, the new one set).
#[derive(Clone, Debug)]
struct EntryChange {
    parts: Vec<(Inode, String, Option<Inode>)>,
}

/// The file system under the traced root, replayed operation by operation.
#[derive(Clone, Debug)]
pub struct Replay {
    root: PathBuf,
    inodes: Vec<InodeState>,
    /// Folder inode → its entries now.
    entries: BTreeMap<Inode, BTreeMap<String, Inode>>,
    /// Folder inode → its durable entries.
    durable_entries: BTreeMap<Inode, BTreeMap<String, Inode>>,
    pending: Vec<EntryChange>,
}

impl Replay {
    /// Starts from `tree` (the folder before the run, all of it durable) at `root`.
    pub fn new(root: &Path, tree: &Tree) -> Replay {
        let mut replay = Replay {
            root: root.to_owned(),
            inodes: vec![InodeState::folder(0o700)],
            entries: BTreeMap::from([(0, BTreeMap::new())]),
            durable_entries: BTreeMap::from([(0, BTreeMap::new())]),
            pending: Vec::new(),
        };
        for (path, node) in tree {
            let (parent, name) = replay
                .parent_and_name(path)
                .expect("a tree's parents come first");
            let inode = match node {
                Node::Folder { mode } => {
                    let inode = replay.add(InodeState::folder(*mode));
                    replay.entries.insert(inode, BTreeMap::new());
                    replay.durable_entries.insert(inode, BTreeMap::new());
                    inode
                }
                Node::File { data, mode } => {
                    replay.add(InodeState::file(data.clone(), *mode, true))
                }
            };
            replay
                .entries
                .get_mut(&parent)
                .unwrap()
                .insert(name.clone(), inode);
            replay
                .durable_entries
                .get_mut(&parent)
                .unwrap()
                .insert(name, inode);
        }
        replay
    }

    fn add(&mut self, state: InodeState) -> Inode {
        self.inodes.push(state);
        self.inodes.len() - 1
    }

    fn relative<'a>(&self, path: &'a Path) -> Option<&'a Path> {
        path.strip_prefix(&self.root).ok()
    }

    /// The folder inode and name of a relative path (the folder must exist now).
    fn parent_and_name(&self, relative: &Path) -> Option<(Inode, String)> {
        let name = relative.file_name()?.to_str()?.to_owned();
        let mut folder = 0;
        if let Some(parent) = relative.parent() {
            for component in parent.components() {
                let Component::Normal(part) = component else {
                    return None;
                };
                folder = *self.entries.get(&folder)?.get(part.to_str()?)?;
            }
        }
        Some((folder, name))
    }

    fn lookup(&self, absolute: &Path) -> Option<Inode> {
        let relative = self.relative(absolute)?;
        if relative.as_os_str().is_empty() {
            return Some(0);
        }
        let (folder, name) = self.parent_and_name(relative)?;
        self.entries.get(&folder)?.get(&name).copied()
    }

    fn change(&mut self, parts: Vec<(Inode, String, Option<Inode>)>) {
        for (folder, name, target) in &parts {
            let entries = self.entries.entry(*folder).or_default();
            match target {
                Some(inode) => entries.insert(name.clone(), *inode),
                None => entries.remove(name),
            };
        }
        self.pending.push(EntryChange { parts });
    }

    /// Applies one operation. `Err` when it does not fit the model (a path that the replay
    /// does not know: the recorder missed something).
    pub fn apply(&mut self, op: &Op) -> Result<(), String> {
        let unknown =
            |path: &Path| format!("{op:?}: {} is not in the replayed tree", path.display());
        match op {
            Op::Create {
                path,
                mode,
                truncate,
            } => match self.lookup(path) {
                Some(inode) => {
                    if *truncate {
                        self.inodes[inode].write(Vec::new());
                    }
                }
                None => {
                    let (folder, name) = self
                        .relative(path)
                        .and_then(|relative| self.parent_and_name(relative))
                        .ok_or_else(|| unknown(path))?;
                    let inode = self.add(InodeState::file(Vec::new(), *mode, false));
                    self.change(vec![(folder, name, Some(inode))]);
                }
            },
            Op::Truncate { path, length } => {
                let inode = self.lookup(path).ok_or_else(|| unknown(path))?;
                let mut data = self.inodes[inode].data.clone();
                data.resize(*length as usize, 0);
                self.inodes[inode].write(data);
            }
            Op::Write {
                path,
                offset,
                bytes,
            } => {
                let inode = self.lookup(path).ok_or_else(|| unknown(path))?;
                let mut data = self.inodes[inode].data.clone();
                let end = *offset as usize + bytes.len();
                if data.len() < end {
                    data.resize(end, 0);
                }
                data[*offset as usize..end].copy_from_slice(bytes);
                self.inodes[inode].write(data);
            }
            Op::Sync { path } => {
                let inode = self.lookup(path).ok_or_else(|| unknown(path))?;
                let state = &mut self.inodes[inode];
                state.durable_data = state.data.clone();
                state.durable_mode = state.mode;
                state.unsynced.clear();
                state.renamed_over = false;
                if state.folder {
                    // Every pending change of this folder persists, in order.
                    let mut kept = Vec::new();
                    for change in std::mem::take(&mut self.pending) {
                        if change.parts.iter().any(|(folder, _, _)| *folder == inode) {
                            for (folder, name, target) in &change.parts {
                                let durable = self.durable_entries.entry(*folder).or_default();
                                match target {
                                    Some(target) => durable.insert(name.clone(), *target),
                                    None => durable.remove(name),
                                };
                            }
                        } else {
                            kept.push(change);
                        }
                    }
                    self.pending = kept;
                }
            }
            Op::Rename { from, to } => {
                let inode = self.lookup(from).ok_or_else(|| unknown(from))?;
                let (from_folder, from_name) = self
                    .parent_and_name(self.relative(from).ok_or_else(|| unknown(from))?)
                    .ok_or_else(|| unknown(from))?;
                let (to_folder, to_name) = self
                    .parent_and_name(self.relative(to).ok_or_else(|| unknown(to))?)
                    .ok_or_else(|| unknown(to))?;
                if self.lookup(to).is_some() {
                    self.inodes[inode].renamed_over = true;
                }
                self.change(vec![
                    (from_folder, from_name, None),
                    (to_folder, to_name, Some(inode)),
                ]);
            }
            Op::Link { from, to } => {
                let inode = self.lookup(from).ok_or_else(|| unknown(from))?;
                let (folder, name) = self
                    .parent_and_name(self.relative(to).ok_or_else(|| unknown(to))?)
                    .ok_or_else(|| unknown(to))?;
                self.change(vec![(folder, name, Some(inode))]);
            }
            Op::Unlink { path } | Op::Rmdir { path } => {
                let (folder, name) = self
                    .parent_and_name(self.relative(path).ok_or_else(|| unknown(path))?)
                    .ok_or_else(|| unknown(path))?;
                self.change(vec![(folder, name, None)]);
            }
            Op::Mkdir { path, mode } => {
                let (folder, name) = self
                    .parent_and_name(self.relative(path).ok_or_else(|| unknown(path))?)
                    .ok_or_else(|| unknown(path))?;
                let inode = self.add(InodeState::folder(*mode));
                self.entries.insert(inode, BTreeMap::new());
                self.durable_entries.insert(inode, BTreeMap::new());
                self.change(vec![(folder, name, Some(inode))]);
            }
            Op::Chmod { path, mode } => {
                let inode = self.lookup(path).ok_or_else(|| unknown(path))?;
                self.inodes[inode].mode = *mode;
            }
        }
        Ok(())
    }

    /// The tree as it is now (what a reader sees; also the state after a SIGKILL).
    pub fn current(&self) -> Tree {
        self.tree(
            &self.entries,
            &|inode| self.inodes[inode].data.clone(),
            &|inode| self.inodes[inode].mode,
        )
    }

    /// The crash states `model` allows at this point, with a label saying what was lost.
    pub fn crash_states(&self, model: Model) -> Vec<(String, Tree)> {
        let mut states = vec![("as written".to_owned(), self.current())];
        match model {
            Model::Ext4Ordered => {
                let lost: BTreeSet<Inode> = (0..self.inodes.len())
                    .filter(|inode| {
                        let state = &self.inodes[*inode];
                        !state.folder && !state.unsynced.is_empty() && !state.renamed_over
                    })
                    .collect();
                if !lost.is_empty() {
                    let data = |inode: Inode| {
                        if lost.contains(&inode) {
                            self.inodes[inode].durable_data.clone()
                        } else {
                            self.inodes[inode].data.clone()
                        }
                    };
                    states.push((
                        format!("unsynced data of {} file(s) not allocated", lost.len()),
                        self.tree(&self.entries, &data, &|inode| self.inodes[inode].mode),
                    ));
                }
            }
            Model::PosixWeak => {
                let durable_data = |inode: Inode| self.inodes[inode].durable_data.clone();
                let durable_mode = |inode: Inode| self.inodes[inode].durable_mode;
                states.push((
                    "only what was fsynced".to_owned(),
                    self.tree(&self.durable_entries, &durable_data, &durable_mode),
                ));
                for (label, subset) in self.entry_subsets() {
                    let mut entries = self.durable_entries.clone();
                    for index in subset {
                        for (folder, name, target) in &self.pending[index].parts {
                            let folder_entries = entries.entry(*folder).or_default();
                            match target {
                                Some(target) => folder_entries.insert(name.clone(), *target),
                                None => folder_entries.remove(name),
                            };
                        }
                    }
                    states.push((
                        label,
                        self.tree(
                            &entries,
                            &|inode| self.inodes[inode].data.clone(),
                            &|inode| self.inodes[inode].mode,
                        ),
                    ));
                }
                for (inode, state) in self.inodes.iter().enumerate() {
                    if state.folder || state.unsynced.is_empty() {
                        continue;
                    }
                    let mut versions = vec![state.durable_data.clone()];
                    versions.extend(
                        state
                            .unsynced
                            .iter()
                            .take(state.unsynced.len() - 1)
                            .cloned(),
                    );
                    for (cut, version) in versions.into_iter().enumerate() {
                        let data = |other: Inode| {
                            if other == inode {
                                version.clone()
                            } else {
                                self.inodes[other].data.clone()
                            }
                        };
                        states.push((
                            format!(
                                "inode {inode}: only {cut} of {} unsynced writes",
                                state.unsynced.len()
                            ),
                            self.tree(&self.entries, &data, &|inode| self.inodes[inode].mode),
                        ));
                    }
                }
            }
        }
        // Identical trees are one state.
        let mut seen = BTreeSet::new();
        states.retain(|(_, tree)| seen.insert(tree.clone()));
        states
    }

    /// Subsets of the pending entry changes to apply (indices, in order), with a label.
    fn entry_subsets(&self) -> Vec<(String, Vec<usize>)> {
        let count = self.pending.len();
        if count == 0 {
            return Vec::new();
        }
        if count <= MAX_ENTRY_SUBSET {
            return (0..(1usize << count))
                .map(|mask| {
                    let subset: Vec<usize> =
                        (0..count).filter(|bit| mask & (1 << bit) != 0).collect();
                    (
                        format!(
                            "{} of {count} unsynced entry changes: {subset:?}",
                            subset.len()
                        ),
                        subset,
                    )
                })
                .collect();
        }
        let mut subsets = Vec::new();
        for length in 0..=count {
            subsets.push((
                format!("the first {length} of {count} unsynced entry changes"),
                (0..length).collect(),
            ));
        }
        for dropped in 0..count {
            subsets.push((
                format!("all {count} unsynced entry changes but #{dropped}"),
                (0..count).filter(|index| *index != dropped).collect(),
            ));
        }
        subsets
    }

    /// The tree reachable from the root through `entries`.
    fn tree(
        &self,
        entries: &BTreeMap<Inode, BTreeMap<String, Inode>>,
        data: &dyn Fn(Inode) -> Vec<u8>,
        mode: &dyn Fn(Inode) -> u32,
    ) -> Tree {
        let mut tree = Tree::new();
        let mut stack = vec![(0usize, PathBuf::new())];
        while let Some((folder, path)) = stack.pop() {
            let Some(children) = entries.get(&folder) else {
                continue;
            };
            for (name, inode) in children {
                let child = path.join(name);
                if self.inodes[*inode].folder {
                    tree.insert(child.clone(), Node::Folder { mode: mode(*inode) });
                    stack.push((*inode, child));
                } else {
                    tree.insert(
                        child,
                        Node::File {
                            data: data(*inode),
                            mode: mode(*inode),
                        },
                    );
                }
            }
        }
        tree
    }
}

impl InodeState {
    fn folder(mode: u32) -> Self {
        InodeState {
            folder: true,
            data: Vec::new(),
            mode,
            durable_data: Vec::new(),
            durable_mode: mode,
            unsynced: Vec::new(),
            renamed_over: false,
        }
    }

    fn file(data: Vec<u8>, mode: u32, durable: bool) -> Self {
        InodeState {
            folder: false,
            durable_data: if durable { data.clone() } else { Vec::new() },
            unsynced: if durable {
                Vec::new()
            } else {
                vec![data.clone()]
            },
            data,
            mode,
            durable_mode: mode,
            renamed_over: false,
        }
    }

    fn write(&mut self, data: Vec<u8>) {
        self.unsynced.push(data.clone());
        self.data = data;
    }
}

/// Reads a folder into a [`Tree`] (links are refused: the agent root has none).
pub fn read_tree(root: &Path) -> std::io::Result<Tree> {
    use std::os::unix::fs::PermissionsExt;
    let mut tree = Tree::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(relative) = stack.pop() {
        let mut children: Vec<_> =
            std::fs::read_dir(root.join(&relative))?.collect::<Result<_, _>>()?;
        children.sort_by_key(|entry| entry.file_name());
        for entry in children {
            let path = relative.join(entry.file_name());
            let metadata = std::fs::symlink_metadata(entry.path())?;
            let mode = metadata.permissions().mode() & 0o7777;
            if metadata.is_dir() {
                tree.insert(path.clone(), Node::Folder { mode });
                stack.push(path);
            } else if metadata.is_file() {
                tree.insert(
                    path,
                    Node::File {
                        data: std::fs::read(entry.path())?,
                        mode,
                    },
                );
            } else {
                return Err(std::io::Error::other(format!(
                    "{}: not a file or a folder",
                    entry.path().display()
                )));
            }
        }
    }
    // Parents before children: BTreeMap order does that for paths.
    Ok(tree)
}

/// Writes `tree` under `root` (which must exist and be empty), with its modes.
pub fn write_tree(root: &Path, tree: &Tree) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for (path, node) in tree {
        let target = root.join(path);
        match node {
            Node::Folder { .. } => std::fs::create_dir(&target)?,
            Node::File { data, mode } => {
                std::fs::write(&target, data)?;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(*mode))?;
            }
        }
    }
    // Folder modes last, so that a 0500 folder does not stop its files from being written.
    for (path, node) in tree.iter().rev() {
        if let Node::Folder { mode } = node {
            std::fs::set_permissions(root.join(path), std::fs::Permissions::from_mode(*mode))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(ops: &[Op]) -> Replay {
        let mut replay = Replay::new(Path::new("/r"), &Tree::new());
        for op in ops {
            replay.apply(op).unwrap();
        }
        replay
    }

    fn write(path: &str, bytes: &[u8]) -> Op {
        Op::Write {
            path: path.into(),
            offset: 0,
            bytes: bytes.to_vec(),
        }
    }

    fn create(path: &str) -> Op {
        Op::Create {
            path: path.into(),
            mode: 0o600,
            truncate: false,
        }
    }

    fn sync(path: &str) -> Op {
        Op::Sync { path: path.into() }
    }

    /// `/r/f` holding `old`, flushed with its folder: the state before a replace.
    fn durable_old_file() -> Replay {
        replay(&[
            create("/r/f"),
            write("/r/f", b"old"),
            sync("/r/f"),
            sync("/r"),
        ])
    }

    #[test]
    fn a_durable_replace_never_loses_both_versions() {
        // The old file, durable; then write a temporary, fsync it, rename it over, fsync the
        // folder: every weak crash state has the old or the new content under the name.
        let mut replay = durable_old_file();
        for op in [
            create("/r/f.tmp"),
            write("/r/f.tmp", b"new"),
            sync("/r/f.tmp"),
            Op::Rename {
                from: "/r/f.tmp".into(),
                to: "/r/f".into(),
            },
            sync("/r"),
        ] {
            replay.apply(&op).unwrap();
            for (label, tree) in replay.crash_states(Model::PosixWeak) {
                let content = match tree.get(Path::new("f")) {
                    Some(Node::File { data, .. }) => data.clone(),
                    other => panic!("{label}: {other:?}"),
                };
                assert!(
                    content == b"old" || content == b"new",
                    "{label}: {content:?}"
                );
            }
        }
    }

    #[test]
    fn a_rename_before_the_data_is_fsynced_can_leave_an_empty_file() {
        let mut replay = durable_old_file();
        for op in [
            create("/r/f.tmp"),
            write("/r/f.tmp", b"new"),
            Op::Rename {
                from: "/r/f.tmp".into(),
                to: "/r/f".into(),
            },
        ] {
            replay.apply(&op).unwrap();
        }
        let empty = replay.crash_states(Model::PosixWeak).into_iter().any(|(_, tree)| {
            matches!(tree.get(Path::new("f")), Some(Node::File { data, .. }) if data.is_empty())
        });
        assert!(
            empty,
            "the weak model must allow the new name with the data lost"
        );
        // ext4 flushes a file renamed over another (auto_da_alloc): never empty there.
        let ext4_empty = replay.crash_states(Model::Ext4Ordered).into_iter().any(|(_, tree)| {
            matches!(tree.get(Path::new("f")), Some(Node::File { data, .. }) if data.is_empty())
        });
        assert!(!ext4_empty);
    }

    #[test]
    fn a_new_folder_not_fsynced_in_its_parent_may_vanish_with_its_files() {
        let replay = replay(&[
            Op::Mkdir {
                path: "/r/d".into(),
                mode: 0o700,
            },
            create("/r/d/f"),
            write("/r/d/f", b"x"),
            sync("/r/d/f"),
            sync("/r/d"),
        ]);
        let vanished = replay
            .crash_states(Model::PosixWeak)
            .into_iter()
            .any(|(_, tree)| !tree.contains_key(Path::new("d/f")));
        assert!(vanished);
    }
}
