//! The log backend's file: JSON lines appended to `--audit-log-path` (or stdout for `-`), rotated
//! by size like kube-apiserver's lumberjack logger: the full file is renamed to
//! `<name>-<UTC time as 2006-01-02T15-04-05.000><ext>` beside it, at most `--audit-log-maxbackup`
//! backups are kept (0 = all) and backups older than `--audit-log-maxage` days are removed
//! (0 = never).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

/// lumberjack's size when `--audit-log-maxsize` is 0.
const DEFAULT_MAX_SIZE_MB: u64 = 100;

#[derive(Clone, Debug)]
pub struct LogOptions {
    /// File path, or `-` for standard output.
    pub path: String,
    /// Days to keep backups (0 = no age limit).
    pub max_age_days: u32,
    /// Backups to keep (0 = all).
    pub max_backups: u32,
    /// Size in bytes at which the file is rotated (0 = lumberjack's 100 MB). The flag is in MB;
    /// tests set bytes directly.
    pub max_size_bytes: u64,
}

impl LogOptions {
    pub fn new(path: &str, max_age_days: u32, max_backups: u32, max_size_mb: u64) -> Self {
        LogOptions {
            path: path.to_string(),
            max_age_days,
            max_backups,
            max_size_bytes: max_size_mb.saturating_mul(1024 * 1024),
        }
    }
}

/// Where event lines go.
pub enum Output {
    Stdout(io::Stdout),
    File(RotatingFile),
}

impl Output {
    pub fn open(opts: &LogOptions) -> io::Result<Output> {
        if opts.path == "-" {
            Ok(Output::Stdout(io::stdout()))
        } else {
            RotatingFile::open(opts).map(Output::File)
        }
    }

    /// Writes one line (which must end with `\n`).
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        match self {
            Output::Stdout(s) => s.lock().write_all(line),
            Output::File(f) => f.write_line(line),
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Stdout(s) => s.lock().flush(),
            Output::File(f) => f.flush(),
        }
    }
}

pub struct RotatingFile {
    path: PathBuf,
    file: BufWriter<File>,
    size: u64,
    max_size: u64,
    max_backups: u32,
    max_age_days: u32,
}

const BACKUP_TIME: &[time::format_description::FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]-[minute]-[second].[subsecond digits:3]");

/// Opens (creating it 0600, in directories created 0700, as kube-apiserver does) for appending.
fn open_append(path: &Path) -> io::Result<(File, u64)> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let size = f.metadata()?.len();
    Ok((f, size))
}

impl RotatingFile {
    pub fn open(opts: &LogOptions) -> io::Result<RotatingFile> {
        let path = PathBuf::from(&opts.path);
        let (f, size) = open_append(&path)?;
        Ok(RotatingFile {
            path,
            file: BufWriter::with_capacity(64 * 1024, f),
            size,
            max_size: if opts.max_size_bytes == 0 {
                DEFAULT_MAX_SIZE_MB * 1024 * 1024
            } else {
                opts.max_size_bytes
            },
            max_backups: opts.max_backups,
            max_age_days: opts.max_age_days,
        })
    }

    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + line.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }

    /// (directory, name before the extension, extension with its dot).
    fn parts(&self) -> (PathBuf, String, String) {
        let dir = self
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (stem, ext) = match name.rfind('.') {
            Some(i) if i > 0 => (name[..i].to_string(), name[i..].to_string()),
            _ => (name.clone(), String::new()),
        };
        (dir, stem, ext)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        let (dir, stem, ext) = self.parts();
        let mut t = OffsetDateTime::now_utc();
        // Several rotations within a millisecond: step the name forward rather than overwrite.
        let backup = loop {
            let ts = t.format(BACKUP_TIME).map_err(io::Error::other)?;
            let candidate = dir.join(format!("{stem}-{ts}{ext}"));
            if !candidate.exists() {
                break candidate;
            }
            t += Duration::milliseconds(1);
        };
        std::fs::rename(&self.path, &backup)?;
        let (f, size) = open_append(&self.path)?;
        self.file = BufWriter::with_capacity(64 * 1024, f);
        self.size = size;
        if let Err(e) = self.prune() {
            tracing::warn!(error = %e, "pruning audit log backups failed");
        }
        Ok(())
    }

    /// The backups beside the file, newest first.
    fn backups(&self) -> io::Result<Vec<(PrimitiveDateTime, PathBuf)>> {
        let (dir, stem, ext) = self.parts();
        let dir_for_read = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir.as_path()
        };
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir_for_read)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(ts) = name
                .strip_prefix(&format!("{stem}-"))
                .and_then(|r| r.strip_suffix(&ext))
            else {
                continue;
            };
            if let Ok(t) = PrimitiveDateTime::parse(ts, BACKUP_TIME) {
                out.push((t, entry.path()));
            }
        }
        out.sort_by_key(|b| std::cmp::Reverse(b.0));
        Ok(out)
    }

    fn prune(&self) -> io::Result<()> {
        if self.max_backups == 0 && self.max_age_days == 0 {
            return Ok(());
        }
        let backups = self.backups()?;
        let cutoff = (OffsetDateTime::now_utc() - Duration::days(self.max_age_days as i64))
            .replace_offset(time::UtcOffset::UTC);
        for (i, (t, path)) in backups.iter().enumerate() {
            let too_many = self.max_backups > 0 && i >= self.max_backups as usize;
            let too_old = self.max_age_days > 0 && t.assume_utc() < cutoff;
            if too_many || too_old {
                std::fs::remove_file(path)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_by_size_keeps_maxbackup_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let opts = LogOptions {
            path: path.display().to_string(),
            max_age_days: 0,
            max_backups: 3,
            max_size_bytes: 100,
        };
        let mut f = RotatingFile::open(&opts).unwrap();
        let line = format!("{}\n", "x".repeat(39)); // 40 bytes: two lines per file
        for _ in 0..40 {
            f.write_line(line.as_bytes()).unwrap();
        }
        f.flush().unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 4, "the live file and 3 backups: {names:?}");
        assert!(names.contains(&"audit.log".to_string()));
        for n in names.iter().filter(|n| *n != "audit.log") {
            // audit-2026-11-23T10-00-00.000.log
            let ts = n
                .strip_prefix("audit-")
                .and_then(|r| r.strip_suffix(".log"))
                .unwrap();
            assert!(PrimitiveDateTime::parse(ts, BACKUP_TIME).is_ok(), "{n}");
            assert_eq!(ts.len(), "2026-11-23T10-00-00.000".len());
            assert!(std::fs::metadata(dir.path().join(n)).unwrap().len() <= 100);
        }
        assert!(std::fs::metadata(&path).unwrap().len() <= 100);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "audit logs are private");
    }

    #[test]
    fn reopening_appends_and_max_age_prunes_old_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, "old line\n").unwrap();
        // A backup from long ago, and an unrelated file that must survive.
        std::fs::write(
            dir.path().join("audit-2001-01-01T00-00-00.000.log"),
            "ancient\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("other.log"), "keep\n").unwrap();
        let opts = LogOptions {
            path: path.display().to_string(),
            max_age_days: 7,
            max_backups: 0,
            max_size_bytes: 20,
        };
        let mut f = RotatingFile::open(&opts).unwrap();
        f.write_line(b"new line 1\n").unwrap(); // 9 + 11 = 20: fits
        f.flush().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "old line\nnew line 1\n"
        );
        f.write_line(b"new line 2\n").unwrap(); // rotates
        f.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new line 2\n");
        assert!(!dir
            .path()
            .join("audit-2001-01-01T00-00-00.000.log")
            .exists());
        assert!(dir.path().join("other.log").exists());
        assert_eq!(f.backups().unwrap().len(), 1);
    }
}
