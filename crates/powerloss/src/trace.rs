//! The recorder's parser: `strace -f -ttt -y -xx -s <big>` output into the file-system
//! operations done under one folder, with the bytes written and the time each call returned.
//!
//! Why strace and not an LD_PRELOAD shim: the binaries are Rust, and Rust's standard library and
//! rustix make some calls through `libc` wrappers and some as raw system calls (rustix's
//! `linux_raw` backend does not go through libc at all), so a shim that wraps libc functions
//! would miss exactly the `openat`, `renameat` and `fsync` calls that matter. strace sees every
//! system call of every thread, whatever made it; `-y` prints the path behind each descriptor,
//! `-xx` the written bytes in hex, `-ttt` the time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One operation on the traced folder, in the order the calls returned.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // The fields are the system calls' arguments, named as there.
pub enum Op {
    /// A file opened with `O_CREAT` (created when absent), truncated when `truncate`.
    Create {
        path: PathBuf,
        mode: u32,
        truncate: bool,
    },
    /// An existing file opened with `O_TRUNC`.
    Truncate { path: PathBuf, length: u64 },
    /// Bytes written at an offset.
    Write {
        path: PathBuf,
        offset: u64,
        bytes: Vec<u8>,
    },
    /// `fsync` or `fdatasync` of a file or a folder.
    Sync { path: PathBuf },
    /// A rename (within or across folders).
    Rename { from: PathBuf, to: PathBuf },
    /// A file removed.
    Unlink { path: PathBuf },
    /// A folder created.
    Mkdir { path: PathBuf, mode: u32 },
    /// A folder removed.
    Rmdir { path: PathBuf },
    /// A hard link made.
    Link { from: PathBuf, to: PathBuf },
    /// A mode set on a handle or a path.
    Chmod { path: PathBuf, mode: u32 },
}

/// An operation and the time its call returned (seconds since the epoch, `-ttt`).
#[derive(Clone, Debug, PartialEq)]
pub struct Timed {
    /// When the call returned (seconds since the epoch).
    pub at: f64,
    /// What it did.
    pub op: Op,
}

/// The system calls to give strace's `-e trace=`.
pub const TRACED_CALLS: &str = "open,openat,creat,write,pwrite64,writev,lseek,close,fsync,\
fdatasync,rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat,rmdir,link,linkat,truncate,\
ftruncate,fchmod,fchmodat,chmod,umask,dup,dup2,dup3";

/// The strace arguments that make the trace this module reads, for the output file `trace`.
pub fn strace_arguments(trace: &Path) -> Vec<String> {
    vec![
        "-f".into(),
        "-ttt".into(),
        "-y".into(),
        "-xx".into(),
        "-s".into(),
        "16777216".into(),
        "-e".into(),
        format!("trace={TRACED_CALLS}"),
        "-o".into(),
        trace.display().to_string(),
    ]
}

/// What the parser knows of an open descriptor.
#[derive(Clone, Debug)]
struct Descriptor {
    position: u64,
    append: bool,
}

/// Parses a trace; keeps the operations on paths under `root`. Failed calls (`= -1 ...`) are
/// skipped. `Err` names a line it cannot read.
pub fn parse(trace: &str, root: &Path) -> Result<Vec<Timed>, String> {
    let mut ops = Vec::new();
    let mut pending: HashMap<String, String> = HashMap::new();
    let mut parser = Parser {
        descriptors: HashMap::new(),
        sizes: HashMap::new(),
        umask: 0o022,
    };
    for raw in trace.lines() {
        let Some((pid, rest)) = raw.split_once(' ') else {
            continue;
        };
        let Some((time, call)) = rest.trim_start().split_once(' ') else {
            continue;
        };
        let Ok(at) = time.parse::<f64>() else {
            continue;
        };
        // Calls interrupted by another thread's line are stitched back together.
        let line = if let Some(head) = call.strip_suffix(" <unfinished ...>") {
            pending.insert(pid.to_owned(), head.to_owned());
            continue;
        } else if let Some(resumed) = call.strip_prefix("<... ") {
            let Some((_, tail)) = resumed.split_once(" resumed>") else {
                continue;
            };
            match pending.remove(pid) {
                Some(head) => format!("{head}{tail}"),
                None => continue,
            }
        } else {
            call.to_owned()
        };
        if line.starts_with("+++") || line.starts_with("---") {
            continue;
        }
        let Some(call) = Call::parse(&line) else {
            return Err(format!("cannot read this trace line: {raw}"));
        };
        if call.result.starts_with('-') || call.result.starts_with('?') {
            continue;
        }
        for op in parser.ops(&call).map_err(|why| format!("{why}: {raw}"))? {
            if op_paths(&op).iter().any(|path| path.starts_with(root)) {
                ops.push(Timed { at, op });
            }
        }
    }
    Ok(ops)
}

/// What the parser tracks between calls. Descriptors are keyed by number alone: the binaries
/// run as one process (threads share its descriptors).
struct Parser {
    descriptors: HashMap<i64, Descriptor>,
    /// Each written file's size, for `O_APPEND` writes.
    sizes: HashMap<PathBuf, u64>,
    umask: u32,
}

impl Parser {
    /// The operations one successful call made (none for calls that change no file).
    fn ops(&mut self, call: &Call) -> Result<Vec<Op>, &'static str> {
        Ok(match call.name.as_str() {
            "umask" => {
                self.umask = parse_mode(call.arg(0)).unwrap_or(self.umask);
                Vec::new()
            }
            "open" | "openat" | "creat" => self.open(call),
            "dup" | "dup2" | "dup3" => {
                let new = call.result.split('<').next().map(str::trim);
                if let (Some(old), Some(Ok(new))) = (call.fd(0), new.map(str::parse::<i64>))
                    && let Some(descriptor) = self.descriptors.get(&old).cloned()
                {
                    self.descriptors.insert(new, descriptor);
                }
                Vec::new()
            }
            "close" => {
                if let Some(fd) = call.fd(0) {
                    self.descriptors.remove(&fd);
                }
                Vec::new()
            }
            "lseek" => {
                if let (Some(fd), Ok(position)) = (call.fd(0), call.result.trim().parse::<u64>())
                    && let Some(descriptor) = self.descriptors.get_mut(&fd)
                {
                    descriptor.position = position;
                }
                Vec::new()
            }
            "write" | "pwrite64" | "writev" => self.write(call)?,
            "fsync" | "fdatasync" => call
                .fd_path(0)
                .map(|path| Op::Sync { path })
                .into_iter()
                .collect(),
            "ftruncate" | "truncate" => {
                let path = if call.name == "ftruncate" {
                    call.fd_path(0)
                } else {
                    call.path_arg(None, 0)
                };
                match (path, call.arg(1).trim().parse::<u64>()) {
                    (Some(path), Ok(length)) => {
                        self.sizes.insert(path.clone(), length);
                        vec![Op::Truncate { path, length }]
                    }
                    _ => Vec::new(),
                }
            }
            _ => self.names(call).into_iter().collect(),
        })
    }

    fn open(&mut self, call: &Call) -> Vec<Op> {
        let (flags, mode) = match call.name.as_str() {
            "openat" => (call.arg(2), call.args.get(3)),
            "open" => (call.arg(1), call.args.get(2)),
            _ => ("O_CREAT|O_WRONLY|O_TRUNC", call.args.get(1)),
        };
        let Some((fd, path)) = call.result_descriptor() else {
            return Vec::new();
        };
        let mode = mode.and_then(|mode| parse_mode(mode)).unwrap_or(0o666) & !self.umask;
        let truncate = flags.contains("O_TRUNC");
        self.descriptors.insert(
            fd,
            Descriptor {
                position: 0,
                append: flags.contains("O_APPEND"),
            },
        );
        if truncate {
            self.sizes.insert(path.clone(), 0);
        }
        if flags.contains("O_CREAT") {
            vec![Op::Create {
                path,
                mode,
                truncate,
            }]
        } else if truncate {
            vec![Op::Truncate { path, length: 0 }]
        } else {
            Vec::new()
        }
    }

    fn write(&mut self, call: &Call) -> Result<Vec<Op>, &'static str> {
        let (Some(fd), Ok(written), Some(path)) = (
            call.fd(0),
            call.result.trim().parse::<u64>(),
            call.fd_path(0),
        ) else {
            return Ok(Vec::new());
        };
        let bytes = if call.name == "writev" {
            call.iovec_bytes()
        } else {
            hex_string(call.arg(1))
        };
        let mut bytes = bytes.ok_or("cannot read the bytes written")?;
        bytes.truncate(written as usize);
        let descriptor = self.descriptors.entry(fd).or_insert(Descriptor {
            position: 0,
            append: false,
        });
        let offset = if call.name == "pwrite64" {
            call.arg(3).trim().parse::<u64>().unwrap_or(0)
        } else if descriptor.append {
            self.sizes.get(&path).copied().unwrap_or(0)
        } else {
            descriptor.position
        };
        if call.name != "pwrite64" {
            descriptor.position = offset + written;
        }
        let size = self.sizes.entry(path.clone()).or_insert(0);
        *size = (*size).max(offset + written);
        Ok(vec![Op::Write {
            path,
            offset,
            bytes,
        }])
    }

    /// The calls that change names and modes.
    fn names(&self, call: &Call) -> Option<Op> {
        // (folder argument, name argument) of the path-taking form and the `*at` form.
        let path = |plain: usize, at: (usize, usize)| {
            if call.name.ends_with("at") || call.name == "renameat2" {
                call.path_arg(Some(at.0), at.1)
            } else {
                call.path_arg(None, plain)
            }
        };
        let mode = |plain: usize, at: usize| {
            let index = if call.name.ends_with("at") { at } else { plain };
            parse_mode(call.arg(index))
        };
        Some(match call.name.as_str() {
            "rename" | "renameat" | "renameat2" => Op::Rename {
                from: path(0, (0, 1))?,
                to: path(1, (2, 3))?,
            },
            "link" | "linkat" => Op::Link {
                from: path(0, (0, 1))?,
                to: path(1, (2, 3))?,
            },
            "unlinkat" if call.arg(2).contains("AT_REMOVEDIR") => Op::Rmdir {
                path: path(0, (0, 1))?,
            },
            "unlink" | "unlinkat" => Op::Unlink {
                path: path(0, (0, 1))?,
            },
            "rmdir" => Op::Rmdir {
                path: path(0, (0, 1))?,
            },
            "mkdir" | "mkdirat" => Op::Mkdir {
                path: path(0, (0, 1))?,
                mode: mode(1, 2).unwrap_or(0o777) & !self.umask,
            },
            "fchmod" => Op::Chmod {
                path: call.fd_path(0)?,
                mode: parse_mode(call.arg(1))?,
            },
            "chmod" | "fchmodat" => Op::Chmod {
                path: path(0, (0, 1))?,
                mode: mode(1, 2)?,
            },
            _ => return None,
        })
    }
}

/// The paths an operation names (two for a rename or a link).
pub fn op_paths(op: &Op) -> Vec<&Path> {
    match op {
        Op::Create { path, .. }
        | Op::Truncate { path, .. }
        | Op::Write { path, .. }
        | Op::Sync { path }
        | Op::Unlink { path }
        | Op::Mkdir { path, .. }
        | Op::Rmdir { path }
        | Op::Chmod { path, .. } => vec![path],
        Op::Rename { from, to } | Op::Link { from, to } => vec![from, to],
    }
}

/// One system call line: `name(arg, arg, ...) = result`.
struct Call {
    name: String,
    args: Vec<String>,
    result: String,
}

impl Call {
    fn parse(line: &str) -> Option<Call> {
        let open = line.find('(')?;
        let name = line[..open].to_owned();
        let close = find_closing(line, open)?;
        let args = split_arguments(&line[open + 1..close]);
        let result = line[close + 1..]
            .trim_start()
            .strip_prefix('=')?
            .trim()
            .to_owned();
        Some(Call { name, args, result })
    }

    fn arg(&self, index: usize) -> &str {
        self.args.get(index).map_or("", String::as_str)
    }

    /// The descriptor number of argument `index` (`3</path>` gives 3).
    fn fd(&self, index: usize) -> Option<i64> {
        self.arg(index).split('<').next()?.trim().parse().ok()
    }

    /// The path strace printed for the descriptor of argument `index`.
    fn fd_path(&self, index: usize) -> Option<PathBuf> {
        annotated_path(self.arg(index))
    }

    /// `(fd, path)` of a call that returns a descriptor (`= 3</path>`).
    fn result_descriptor(&self) -> Option<(i64, PathBuf)> {
        let fd = self.result.split('<').next()?.trim().parse().ok()?;
        Some((fd, annotated_path(&self.result)?))
    }

    /// The path of a name argument, joined to the folder of descriptor argument `dir` when the
    /// name is relative.
    fn path_arg(&self, dir: Option<usize>, name: usize) -> Option<PathBuf> {
        let name = PathBuf::from(String::from_utf8(hex_string(self.arg(name))?).ok()?);
        if name.is_absolute() {
            return Some(name);
        }
        let base = annotated_path(self.arg(dir?))?;
        Some(base.join(name))
    }

    /// The bytes of a `writev` call's `[{iov_base="..", iov_len=n}, ...]`.
    fn iovec_bytes(&self) -> Option<Vec<u8>> {
        let mut bytes = Vec::new();
        for part in self.arg(1).split("iov_base=").skip(1) {
            let end = part.find("\", iov_len")? + 1;
            bytes.extend(hex_string(&part[..end])?);
        }
        Some(bytes)
    }
}

/// The path inside `<...>` of `3</tmp/x>`; `None` for sockets and the like.
fn annotated_path(text: &str) -> Option<PathBuf> {
    let start = text.find('<')? + 1;
    let end = text.rfind('>')?;
    let inner = unescape(&text[start..end]);
    inner.starts_with('/').then(|| PathBuf::from(inner))
}

/// strace escapes `<`, `>`, `\` and non-printing bytes in `-y` paths as `\xNN`.
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'\\'
            && bytes.get(index + 1) == Some(&b'x')
            && index + 3 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&text[index + 2..index + 4], 16)
        {
            out.push(byte);
            index += 4;
            continue;
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The bytes of a `-xx` string argument, `"\x41\x42"` (with `...` when truncated: refused).
fn hex_string(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    let inner = text.strip_prefix('"')?;
    if inner.ends_with("\"...") {
        return None;
    }
    let inner = inner.strip_suffix('"')?;
    let mut bytes = Vec::with_capacity(inner.len() / 4);
    let mut rest = inner;
    while !rest.is_empty() {
        let hex = rest.strip_prefix("\\x")?;
        bytes.push(u8::from_str_radix(hex.get(..2)?, 16).ok()?);
        rest = &hex[2..];
    }
    Some(bytes)
}

/// An octal mode argument (`0600`).
fn parse_mode(text: &str) -> Option<u32> {
    let text = text.trim();
    u32::from_str_radix(text.strip_prefix('0').unwrap_or(text), 8).ok()
}

/// Where the scan of a strace call stands: inside a quoted string (with `\\` escapes), or at a
/// depth of `()`, `[]`, `{}` and `<>`.
#[derive(Default)]
struct Nesting {
    depth: i32,
    in_string: bool,
    escaped: bool,
}

impl Nesting {
    /// Takes the next character; true when it stands outside strings, so that a bracket or a
    /// comma means what it says (the depth is already updated for a bracket).
    fn structural(&mut self, character: char) -> bool {
        if self.in_string {
            match (self.escaped, character) {
                (true, _) => self.escaped = false,
                (false, '\\') => self.escaped = true,
                (false, '"') => self.in_string = false,
                _ => {}
            }
            return false;
        }
        match character {
            '"' => {
                self.in_string = true;
                false
            }
            '(' | '[' | '{' | '<' => {
                self.depth += 1;
                true
            }
            ')' | ']' | '}' | '>' => {
                self.depth -= 1;
                true
            }
            _ => true,
        }
    }
}

/// The index of the `)` that closes the `(` at `open`, outside strings, `<>` and brackets.
fn find_closing(line: &str, open: usize) -> Option<usize> {
    let mut nesting = Nesting::default();
    line.char_indices()
        .skip(open)
        .find_map(|(index, character)| {
            (nesting.structural(character) && character == ')' && nesting.depth == 0)
                .then_some(index)
        })
}

/// Splits the text between the parentheses at top-level commas.
fn split_arguments(text: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut nesting = Nesting::default();
    for character in text.chars() {
        if nesting.structural(character) && character == ',' && nesting.depth == 0 {
            args.push(current.trim().to_owned());
            current.clear();
        } else {
            current.push(character);
        }
    }
    if !current.trim().is_empty() {
        args.push(current.trim().to_owned());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = r#"100 1700000000.000001 umask(022) = 022
100 1700000000.000002 openat(AT_FDCWD</w>, "\x2f\x72\x2f\x61", O_RDONLY|O_CLOEXEC|O_DIRECTORY|O_NOFOLLOW) = 3</r/a>
100 1700000000.000003 openat(3</r/a>, "\x6b\x2e\x74\x6d\x70", O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, 0600) = 4</r/a/k.tmp>
101 1700000000.000004 write(4</r/a/k.tmp>, "\x68\x69", 2 <unfinished ...>
100 1700000000.000005 write(9<socket:[1]>, "\x00", 1) = 1
101 1700000000.000006 <... write resumed>) = 2
100 1700000000.000007 fsync(4</r/a/k.tmp>) = 0
100 1700000000.000008 renameat(3</r/a>, "\x6b\x2e\x74\x6d\x70", 3</r/a>, "\x6b") = 0
100 1700000000.000009 fsync(3</r/a>) = 0
100 1700000000.000010 unlinkat(3</r/a>, "\x6f\x6c\x64", 0) = -1 ENOENT (No such file or directory)
100 1700000000.000011 mkdirat(AT_FDCWD</w>, "\x2f\x72\x2f\x61\x2f\x64", 0700) = 0
100 1700000000.000012 +++ exited with 0 +++
"#;

    #[test]
    fn the_parser_reads_what_strace_prints() {
        let ops: Vec<Op> = parse(TRACE, Path::new("/r"))
            .unwrap()
            .into_iter()
            .map(|timed| timed.op)
            .collect();
        assert_eq!(
            ops,
            vec![
                Op::Create {
                    path: "/r/a/k.tmp".into(),
                    mode: 0o600,
                    truncate: false
                },
                Op::Write {
                    path: "/r/a/k.tmp".into(),
                    offset: 0,
                    bytes: b"hi".to_vec()
                },
                Op::Sync {
                    path: "/r/a/k.tmp".into()
                },
                Op::Rename {
                    from: "/r/a/k.tmp".into(),
                    to: "/r/a/k".into()
                },
                Op::Sync {
                    path: "/r/a".into()
                },
                Op::Mkdir {
                    path: "/r/a/d".into(),
                    mode: 0o700
                },
            ]
        );
    }
}
