//! The hostile-input battery (issue 14): every spec in `tests/hostile/` through `expc check` and
//! `expc run` with a time and memory bound, and the cases that need a live setup — FIFOs and
//! devices, deep `extends` chains, hostile file names in SLURM scripts, `fmt` on odd line ends,
//! broken pipes, concurrent and locked resumes, corrupt checkpoints, torn metrics, a full disk
//! and signals. Each asserts a clean answer: the right exit status, a stable code, a location
//! where one exists, and never a panic or a hang.

use crate::common::repo;
use expc::run::{checkpoint, driver, metrics, run_folder};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::TempDir;

fn tmp(name: &str) -> TempDir {
    TempDir::new(&format!("hostile-{name}"))
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    /// Asserts a clean user error: exit 1, the code, no panic.
    fn user_error(&self, code: &str, what: &str) {
        assert_eq!(self.code, Some(1), "{what}: exit status\nstderr:\n{}", self.stderr);
        assert!(self.stderr.contains(&format!("error[{code}]")), "{what}: expected {code}\nstderr:\n{}", self.stderr);
        self.no_panic(what);
    }
    fn no_panic(&self, what: &str) {
        for bad in ["internal error", "panicked", "RUST_BACKTRACE"] {
            assert!(!self.stderr.contains(bad), "{what}: {bad}\nstderr:\n{}", self.stderr);
        }
    }
}

const TIME_LIMIT: Duration = Duration::from_secs(60);
/// Address-space limit of every expc started here: a runaway read or expansion fails fast
/// instead of swapping the machine.
const MEMORY_LIMIT: u64 = 3 << 30;

fn command(cwd: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_expc"));
    c.current_dir(cwd).args(args).env_remove("EXPC_TEST_ABORT_AFTER").env("NO_COLOR", "1");
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            c.pre_exec(|| {
                let lim = libc::rlimit { rlim_cur: MEMORY_LIMIT, rlim_max: MEMORY_LIMIT };
                libc::setrlimit(libc::RLIMIT_AS, &lim);
                Ok(())
            });
        }
    }
    c
}

/// Runs expc to completion within [`TIME_LIMIT`] (killing it and failing the test otherwise).
fn run_cmd(mut c: Command, what: &str) -> Outcome {
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("expc starts");
    let (mut out, mut err) = (child.stdout.take().expect("stdout"), child.stderr.take().expect("stderr"));
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: expc did not finish within {TIME_LIMIT:?} (a hang)");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Outcome { code: status.code(), stdout: t_out.join().unwrap_or_default(), stderr: t_err.join().unwrap_or_default() }
}

fn expc(cwd: &Path, args: &[&str]) -> Outcome {
    run_cmd(command(cwd, args), &args.join(" "))
}

#[test]
fn every_hostile_spec_is_a_located_error_in_check_and_run() {
    let dir = repo().join("tests/hostile");
    let out = tmp("battery-out");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).expect("tests/hostile").flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "exp")).collect();
    files.sort();
    assert!(files.len() >= 25, "the battery holds its cases: {}", files.len());
    for f in &files {
        let text = std::fs::read(f).expect("readable");
        let text = String::from_utf8_lossy(&text);
        let name = f.file_name().expect("name").to_string_lossy().into_owned();
        let expect =
            text.lines().next().and_then(|l| l.strip_prefix("# expect: ")).unwrap_or_else(|| panic!("{name}: first line `# expect: E0xxx`")).trim().to_string();
        let forbid = text.lines().nth(1).and_then(|l| l.strip_prefix("# forbid: ")).map(|s| s.trim().to_string());
        let out_dir = out.display().to_string();
        for args in [vec!["check", name.as_str()], vec!["run", name.as_str(), "--quiet", "--out", out_dir.as_str()]] {
            let what = format!("expc {} ({name})", args.join(" "));
            let o = expc(&dir, &args);
            o.user_error(&expect, &what);
            // Located: `┌─ FILE:LINE:COL` in the rendered diagnostic.
            let located = o.stderr.lines().any(|l| l.contains(&format!("{name}:")) && l.contains('─'));
            assert!(located, "{what}: no file:line:col in\n{}", o.stderr);
            if let Some(code) = &forbid {
                assert!(!o.stderr.contains(&format!("error[{code}]")), "{what}: spurious {code}\n{}", o.stderr);
            }
        }
    }
    assert!(!dir.join("PWNED").exists());
    assert!(std::fs::read_dir(&*out).map(|d| d.count()).unwrap_or(0) == 0, "no run folder for a spec that does not check");
}

const VALID: &str = "experiment tiny
data {
  dataset synthetic shape=3x8x8 classes=4 train=64 test=16
  batch 8
  scale 1/255
}
model {
  input 3x8x8
  conv1: conv 4 3x3 pad=1
  relu
  pool1: maxpool 2
  fc1: fc 4
  loss: softmax_loss
  accuracy
}
train {
  solver sgd momentum=0.9
  lr 0.05
  iterations 40
  eval every=10 batches=2
  log every=5
  checkpoint every=10 keep=2
  seed 3
}
";

#[cfg(unix)]
fn mkfifo(p: &Path) -> bool {
    Command::new("mkfifo").arg(p).status().is_ok_and(|s| s.success())
}

#[test]
#[cfg(unix)]
fn fifos_devices_and_huge_files_are_refused_not_read() {
    let d = tmp("fifo");
    assert!(mkfifo(&d.join("base.exp")), "mkfifo");
    std::fs::write(d.join("variant.exp"), "experiment v\nextends \"base.exp\"\n").expect("write");
    let o = expc(&d, &["check", "variant.exp"]);
    o.user_error("E0010", "extends a FIFO");
    assert!(o.stderr.contains("not a regular file") && o.stderr.contains("variant.exp:2:"), "{}", o.stderr);
    // The spec itself on the command line, and a device.
    expc(&d, &["check", "base.exp"]).user_error("E0010", "check a FIFO");
    expc(&d, &["check", "/dev/zero"]).user_error("E0010", "check /dev/zero");
    expc(&d, &["fmt", "/dev/urandom"]).user_error("E0010", "fmt /dev/urandom");
    // A 17 MiB spec (sparse): refused with the limit named.
    let big = std::fs::File::create(d.join("big.exp")).expect("create");
    big.set_len(17 << 20).expect("sparse");
    let o = expc(&d, &["check", "big.exp"]);
    o.user_error("E0010", "17 MiB spec");
    assert!(o.stderr.contains("16 MiB"), "{}", o.stderr);
    // expc.toml as a FIFO next to a valid spec.
    let e = tmp("fifo-toml");
    std::fs::write(e.join("tiny.exp"), VALID).expect("write");
    assert!(mkfifo(&e.join("expc.toml")));
    let o = expc(&e, &["run", "tiny.exp", "--quiet"]);
    o.user_error("E0030", "expc.toml FIFO");
    // run.json as a FIFO: resume says so instead of blocking.
    let r = tmp("fifo-record");
    assert!(mkfifo(&r.join("run.json")));
    let o = expc(&r, &["resume", "."]);
    o.user_error("E0500", "run.json FIFO");
    assert!(o.stderr.contains("not a regular file"), "{}", o.stderr);
}

#[test]
fn a_deep_extends_chain_is_cut_with_its_own_code() {
    let d = tmp("chain");
    let n = 300;
    std::fs::write(d.join("f0.exp"), VALID).expect("write");
    for i in 1..=n {
        std::fs::write(d.join(format!("f{i}.exp")), format!("experiment f{i}\nextends \"f{}.exp\"\n", i - 1)).expect("write");
    }
    let o = expc(&d, &["check", &format!("f{n}.exp")]);
    o.user_error("E0021", "deep chain");
    assert!(!o.stderr.contains("E0001"), "no valid file is blamed with a syntax error: {}", o.stderr);
    // A chain within the limit checks.
    let o = expc(&d, &["check", "f40.exp"]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
}

#[test]
fn huge_models_check_in_linear_time_and_bounded_memory() {
    let d = tmp("huge");
    for (name, body) in [("unlabelled", "repeat 100000 { relu }"), ("labelled", "repeat 100000 { r: relu }")] {
        let text = VALID.replace("  fc1: fc 4\n", &format!("  fc1: fc 4\n  {body}\n"));
        std::fs::write(d.join(format!("{name}.exp")), text).expect("write");
        let t = Instant::now();
        let o = expc(&d, &["check", &format!("{name}.exp")]);
        assert_eq!(o.code, Some(0), "{name}: {}", o.stderr);
        // Generous for a debug-profile binary on a loaded 2-core machine (release: well under 1 s).
        assert!(t.elapsed() < Duration::from_secs(20), "{name}: {:?}", t.elapsed());
    }
}

#[test]
#[cfg(unix)]
fn slurm_scripts_quote_hostile_names_and_values() {
    let d = tmp("slurm");
    let spec = "x$(touch PWNED)`touch PWNED2`'q\" ;.exp";
    std::fs::write(d.join(spec), VALID).expect("write");
    let out = "o$(touch PWNED3) 'x";
    let o = expc(
        &d,
        &[
            "run",
            spec,
            "--sweep",
            "train.lr=0.1,0.01",
            "--sweep",
            "data.augment=pad=1 crop=8x8",
            "--set",
            "train.weight_decay=1e-4",
            "--emit",
            "slurm",
            "--out",
            out,
        ],
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let script_path = d.join(out).join("tiny-sweep.sbatch");
    let script = std::fs::read_to_string(&script_path).expect("script written");
    assert!(!script.contains("eval"), "{script}");
    // A fake `srun` records its arguments, NUL-separated, instead of running anything.
    let bin = d.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    std::fs::write(bin.join("srun"), "#!/bin/bash\nprintf '%s\\0' \"$@\" > \"$ARGS_OUT\"\n").expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("srun"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    for (task, lr) in [("0", "0.1"), ("1", "0.01")] {
        let args_out = d.join(format!("args-{task}"));
        let st = Command::new("bash")
            .arg(&script_path)
            .current_dir(&*d)
            .env("PATH", &path)
            .env("SLURM_ARRAY_TASK_ID", task)
            .env("ARGS_OUT", &args_out)
            .status()
            .expect("bash runs");
        assert!(st.success(), "task {task}");
        let raw = std::fs::read(&args_out).expect("srun was called");
        let args: Vec<String> = raw.split(|&b| b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let expected: Vec<String> = [
            "expc",
            "run",
            spec,
            "--quiet",
            "--threads",
            "",
            "--out",
            out,
            "--set",
            "train.weight_decay=1e-4",
            "--set",
            &format!("train.lr={lr}"),
            "--set",
            "data.augment=pad=1 crop=8x8",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(args.len(), expected.len(), "{args:?}");
        for (i, (a, e)) in args.iter().zip(&expected).enumerate() {
            if i != 5 {
                assert_eq!(a, e, "argument {i}: {args:?}");
            }
        }
    }
    for p in ["PWNED", "PWNED2", "PWNED3"] {
        assert!(!d.join(p).exists() && !d.join(out).join(p).exists(), "{p} was created: the script ran a command substitution");
    }
    // A newline in a value cannot be written into a script.
    let o = expc(&d, &["run", spec, "--sweep", "train.lr=0.1,0.01\ntouch PWNED", "--emit", "slurm", "--out", "o2"]);
    o.user_error("E0510", "newline in a sweep value");
}

#[test]
fn command_line_values_cannot_inject_settings() {
    let d = tmp("set");
    std::fs::write(d.join("tiny.exp"), VALID).expect("write");
    let o = expc(&d, &["run", "tiny.exp", "--set", "train.lr=0.1\riterations 1", "--quiet", "--out", "runs"]);
    o.user_error("E0510", "CR in --set");
    assert!(o.stderr.contains("U+000D"), "{}", o.stderr);
    let o = expc(&d, &["run", "tiny.exp", "--set", "train.lr=0.1 # c", "--quiet", "--out", "runs"]);
    o.user_error("E0510", "comment in --set");
    assert!(o.stderr.contains("comment") && !o.stderr.contains("missing its"), "{}", o.stderr);
    let o = expc(&d, &["run", "tiny.exp", "--iterations", "0", "--quiet", "--out", "runs"]);
    o.user_error("E0511", "--iterations 0");
    assert!(!d.join("runs").exists(), "no run folder for a refused run");
}

#[test]
fn fmt_keeps_cr_crlf_tab_and_bom_files_valid() {
    let d = tmp("fmt");
    let with_comment = VALID.replace("  relu\n", "  relu  # a comment\n");
    let variants = [
        ("cr.exp", with_comment.replace('\n', "\r")),
        ("crlf.exp", with_comment.replace('\n', "\r\n")),
        ("tabs.exp", with_comment.replace("  ", "\t")),
        ("bom.exp", format!("\u{feff}{with_comment}")),
        ("mixed.exp", format!("\u{feff}{}", with_comment.replacen('\n', "\r", 5).replacen('\n', "\r\n", 5).replace("  ", "\t "))),
    ];
    for (name, text) in &variants {
        std::fs::write(d.join(name), text).expect("write");
        let o = expc(&d, &["check", name]);
        assert_eq!(o.code, Some(0), "{name} is valid before fmt: {}", o.stderr);
        let o = expc(&d, &["fmt", name]);
        assert_eq!(o.code, Some(0), "{name}: fmt: {}", o.stderr);
        let o = expc(&d, &["check", name]);
        assert_eq!(o.code, Some(0), "{name} is still valid after fmt: {}", o.stderr);
        let after = std::fs::read_to_string(d.join(name)).expect("read");
        assert!(after.contains("# a comment\n") && !after.contains('\r'), "{name}: {after:?}");
        assert_eq!(expc(&d, &["fmt", "--check", name]).code, Some(0), "{name}: fmt is idempotent");
    }
}

#[test]
#[cfg(unix)]
fn a_closed_pipe_ends_expc_quietly() {
    let d = tmp("pipe");
    std::fs::write(d.join("tiny.exp"), VALID).expect("write");
    for args in [vec!["dump", "graph", "tiny.exp"], vec!["dump", "spec", "tiny.exp"], vec!["run", "tiny.exp", "--quiet", "--out", "runs"]] {
        let mut c = command(&d, &args);
        c.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null());
        let mut child = c.spawn().expect("starts");
        drop(child.stdout.take()); // like `| head -c 0`: the reader is gone
        let mut err = String::new();
        let _ = child.stderr.take().expect("stderr").read_to_string(&mut err);
        let st = child.wait().expect("wait");
        use std::os::unix::process::ExitStatusExt;
        assert!(st.code() != Some(2) && !err.contains("internal error"), "{args:?}: {st:?} {err}");
        assert!(st.success() || st.signal() == Some(libc::SIGPIPE), "{args:?}: {st:?} {err}");
    }
}

// ---- runs: locks, corrupt checkpoints, torn metrics, full disk, signals ---------------------------

fn run_folder(o: &Outcome, root: &Path) -> PathBuf {
    let d = o.stdout.lines().find_map(|l| l.strip_prefix("run folder: ")).unwrap_or_else(|| panic!("no run folder in {}\n{}", o.stdout, o.stderr));
    root.join(d.trim())
}

/// Metrics without the timing columns: iteration, lr, train loss, test loss, test accuracy.
type Losses = Vec<(u64, f64, Option<f64>, Option<f64>, Option<f64>)>;

fn losses(dir: &Path) -> Losses {
    metrics::read(&dir.join("metrics.csv")).expect("metrics").into_iter().map(|r| (r.iteration, r.lr, r.train_loss, r.test_loss, r.test_accuracy)).collect()
}

/// A finished run and a run aborted (as `kill -9`) after iteration 35: checkpoints 20 and 30.
fn full_and_aborted(root: &Path) -> (PathBuf, PathBuf) {
    std::fs::write(root.join("tiny.exp"), VALID).expect("write");
    let o = expc(root, &["run", "tiny.exp", "--quiet", "--threads", "2", "--out", "runs"]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let full = run_folder(&o, root);
    let mut c = command(root, &["run", "tiny.exp", "--quiet", "--threads", "2", "--out", "runs"]);
    c.env("EXPC_TEST_ABORT_AFTER", "35");
    let o = run_cmd(c, "aborted run");
    assert_ne!(o.code, Some(0));
    let cut = run_folder(&o, root);
    assert_eq!(driver::latest_checkpoint(&cut).expect("checkpoint").0, 30);
    (full, cut)
}

fn resume(root: &Path, dir: &Path) -> Outcome {
    expc(root, &["resume", &dir.display().to_string(), "--quiet", "--threads", "2"])
}

fn no_duplicate_rows(dir: &Path) {
    let its: Vec<u64> = metrics::read(&dir.join("metrics.csv")).expect("metrics").iter().map(|r| r.iteration).collect();
    let mut sorted = its.clone();
    sorted.dedup();
    assert_eq!(its, sorted, "duplicated or unordered rows");
}

#[test]
fn a_locked_run_folder_is_refused_and_a_stale_lock_is_taken_over() {
    let root = tmp("lock");
    let (full, cut) = full_and_aborted(&root);
    let before = std::fs::read(cut.join("metrics.csv")).expect("metrics");
    {
        let _held = run_folder::RunLock::acquire(&cut).expect("lock");
        let o = resume(&root, &cut);
        o.user_error("E0506", "resume while locked");
        assert!(o.stderr.contains(&std::process::id().to_string()), "names the owner: {}", o.stderr);
        assert_eq!(std::fs::read(cut.join("metrics.csv")).expect("metrics"), before, "nothing touched");
    }
    // A lock file left by a dead process (no flock held): taken over.
    std::fs::write(cut.join("expc.lock"), "999999999").expect("write");
    let o = resume(&root, &cut);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(!cut.join("expc.lock").exists(), "released on exit");
    assert_eq!(losses(&cut), losses(&full));
}

#[test]
fn two_resumes_at_once_never_corrupt_the_metrics() {
    let root = tmp("concurrent");
    let (full, cut) = full_and_aborted(&root);
    let dir = cut.display().to_string();
    let spawn = || {
        let mut c = command(&root, &["resume", &dir, "--quiet", "--threads", "1"]);
        c.stdout(Stdio::null()).stderr(Stdio::piped());
        c.spawn().expect("starts")
    };
    let (a, b) = (spawn(), spawn());
    let outs: Vec<_> = [a, b].into_iter().map(|c| c.wait_with_output().expect("wait")).collect();
    let ok = outs.iter().filter(|o| o.status.success()).count();
    assert!(ok >= 1, "one of them trains");
    for o in &outs {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success() || err.contains("E0506") || err.contains("E0533"), "{err}");
        assert!(!err.contains("internal error"), "{err}");
    }
    no_duplicate_rows(&cut);
    // Thread count differs from the full run (1 vs 2): compare the iterations only, then finish.
    assert_eq!(losses(&cut).iter().map(|r| r.0).collect::<Vec<_>>(), losses(&full).iter().map(|r| r.0).collect::<Vec<_>>());
}

/// Byte range of one tensor's data in a safetensors file.
fn tensor_range(bytes: &[u8], name: &str) -> std::ops::Range<usize> {
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).expect("header");
    let off = &header[name]["data_offsets"];
    let (a, b) = (off[0].as_u64().expect("start") as usize, off[1].as_u64().expect("end") as usize);
    8 + n + a..8 + n + b
}

#[test]
fn corrupt_checkpoints_are_detected_and_resume_falls_back() {
    for case in ["weights", "state", "truncated", "all"] {
        let root = tmp(&format!("corrupt-{case}"));
        let (full, cut) = full_and_aborted(&root);
        let ck = cut.join("checkpoints");
        let model = ck.join("ckpt-0000030.safetensors");
        let state = ck.join("ckpt-0000030.state.safetensors");
        let flip = |p: &Path, range: std::ops::Range<usize>, n: usize| {
            let mut b = std::fs::read(p).expect("read");
            let step = (range.len() / n).max(1);
            for i in 0..n {
                let at = range.start + (i * step) % range.len();
                b[at] ^= 0x40;
            }
            std::fs::write(p, b).expect("write");
        };
        match case {
            "weights" => {
                let b = std::fs::read(&model).expect("read");
                flip(&model, tensor_range(&b, "fc1.weight"), 64);
            }
            "state" => {
                let b = std::fs::read(&state).expect("read");
                let n = u64::from_le_bytes(b[..8].try_into().expect("8")) as usize;
                flip(&state, 8 + n..b.len(), 100);
            }
            "truncated" => {
                let b = std::fs::read(&model).expect("read");
                std::fs::write(&model, &b[..b.len() / 2]).expect("write");
            }
            _ => {
                for p in [&model, &ck.join("ckpt-0000020.safetensors")] {
                    let b = std::fs::read(p).expect("read");
                    flip(p, tensor_range(&b, "fc1.weight"), 64);
                }
            }
        }
        // The library sees the damage.
        if case == "weights" {
            assert_eq!(checkpoint::load(&model).expect_err("checksum").code, "E0503");
        }
        let o = resume(&root, &cut);
        if case == "all" {
            o.user_error("E0503", "every checkpoint damaged");
            assert!(o.stderr.contains("expc run") && !o.stderr.contains("`expc resume"), "{}", o.stderr);
            continue;
        }
        assert_eq!(o.code, Some(0), "{case}: {}", o.stderr);
        assert!(o.stderr.contains("warning: skipping the damaged checkpoint of iteration 30"), "{case}: {}", o.stderr);
        assert!(ck.join("ckpt-0000030.safetensors.corrupt").exists(), "{case}: set aside");
        assert_eq!(losses(&cut), losses(&full), "{case}: resumed from 20, identical metrics");
        no_duplicate_rows(&cut);
    }
}

#[test]
fn a_torn_metrics_row_and_an_orphan_model_file_do_not_block_resume() {
    let root = tmp("torn");
    let (full, cut) = full_and_aborted(&root);
    let mut m = std::fs::read(cut.join("metrics.csv")).expect("read");
    m.extend_from_slice(b"40,5.000000,0.05,1.2"); // half a row, no newline: a full disk
    std::fs::write(cut.join("metrics.csv"), m).expect("write");
    // A model file whose state file never got written.
    let ck = cut.join("checkpoints");
    std::fs::copy(ck.join("ckpt-0000030.safetensors"), ck.join("ckpt-0000040.safetensors")).expect("copy");
    std::fs::write(ck.join("ckpt-0000040.state.tmp"), b"partial").expect("write");
    let o = resume(&root, &cut);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(o.stderr.contains("removed the incomplete checkpoint"), "{}", o.stderr);
    assert_eq!(losses(&cut), losses(&full));
    no_duplicate_rows(&cut);
    // A malformed row in the middle is still an error (only a torn last line is dropped).
    let text = std::fs::read_to_string(cut.join("metrics.csv")).expect("read");
    let broken = text.replacen("\n10,", "\n10,x,", 1);
    std::fs::write(cut.join("metrics.csv"), broken).expect("write");
    assert_eq!(metrics::Writer::resume(&cut.join("metrics.csv"), 20).err().expect("malformed").code, "E0501");
}

#[test]
#[cfg(target_os = "linux")]
fn a_full_disk_fails_cleanly_and_resume_recovers() {
    if unsafe { libc::geteuid() } != 0 {
        println!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let root = tmp("diskfull");
    let (full, cut) = full_and_aborted(&root);
    let mnt = root.join("mnt");
    std::fs::create_dir_all(&mnt).expect("mkdir");
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"]).arg(&mnt).status().is_ok_and(|s| s.success());
    if !mounted {
        println!("skipped: cannot mount a tmpfs here (no CAP_SYS_ADMIN in this container)");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let copy = mnt.join("run");
    let st = Command::new("cp").arg("-a").arg(&cut).arg(&copy).status().expect("cp");
    assert!(st.success());
    // Fill the rest of the disk.
    {
        use std::io::Write;
        let mut f = std::fs::File::create(mnt.join("filler")).expect("filler");
        let chunk = vec![0u8; 64 << 10];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    let o = resume(&root, &copy);
    o.user_error("E0500", "resume on a full disk");
    assert!(o.stderr.contains("No space left") || o.stderr.contains("os error 28"), "{}", o.stderr);
    std::fs::remove_file(mnt.join("filler")).expect("free the disk");
    let o = resume(&root, &copy);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert_eq!(losses(&copy), losses(&full));
    no_duplicate_rows(&copy);
}

#[test]
#[cfg(unix)]
fn killed_by_a_signal_mid_run_then_resumed_equals_an_uninterrupted_run() {
    let root = tmp("signal");
    let long = VALID.replace("iterations 40", "iterations 600").replace("checkpoint every=10 keep=2", "checkpoint every=20 keep=2");
    std::fs::write(root.join("tiny.exp"), &long).expect("write");
    let o = expc(&root, &["run", "tiny.exp", "--quiet", "--threads", "2", "--out", "runs"]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let full = run_folder(&o, &root);
    for sig in [libc::SIGKILL, libc::SIGTERM, libc::SIGINT] {
        let mut c = command(&root, &["run", "tiny.exp", "--quiet", "--threads", "2", "--out", "runs"]);
        c.stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = c.spawn().expect("starts");
        let mut line = String::new();
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        std::io::BufRead::read_line(&mut stdout, &mut line).expect("run folder line");
        let dir = root.join(line.trim().strip_prefix("run folder: ").expect("run folder"));
        let t = Instant::now();
        while driver::latest_checkpoint(&dir).is_none() && t.elapsed() < TIME_LIMIT {
            std::thread::sleep(Duration::from_millis(2));
        }
        unsafe {
            libc::kill(child.id() as libc::pid_t, sig);
        }
        let st = child.wait().expect("wait");
        if st.success() {
            println!("signal {sig}: the run finished before the signal arrived; nothing to resume");
            continue;
        }
        let o = resume(&root, &dir);
        assert_eq!(o.code, Some(0), "signal {sig}: {}", o.stderr);
        assert_eq!(losses(&dir), losses(&full), "signal {sig}");
        no_duplicate_rows(&dir);
    }
}

// That every code the sources use is documented is checked against the code registry in
// `errors::the_code_registry_and_docs_errors_md_agree`.

/// The messages of item 11: a code point for invisible characters, no "found a number" for a
/// number out of range, no spurious unknown argument after a bad shape.
#[test]
fn messages_name_code_points_and_ranges() {
    let dir = repo().join("tests/hostile");
    for (file, needles) in [
        ("byte_order_mark_inside.exp", &["U+FEFF", "byte order mark"][..]),
        ("zero_width_space.exp", &["U+200B", "zero-width space"]),
        ("right_to_left_mark.exp", &["U+200F", "right-to-left mark"]),
        ("nul_byte.exp", &["U+0000", "NUL"]),
        ("lr_overflows_f64.exp", &["`1e309` is too large"]),
        ("lr_beyond_f32.exp", &["32-bit floats"]),
        ("scale_divides_by_zero.exp", &["`1/0` divides by zero"]),
        ("scale_zero_over_zero.exp", &["`0/0` is not a number"]),
        ("batch_four_billion.exp", &["at most 16777216"]),
        ("zero_size_shape.exp", &["dimension 2 of the shape is 0"]),
    ] {
        let o = expc(&dir, &["check", file]);
        for n in needles {
            assert!(o.stderr.contains(n), "{file}: `{n}` missing from\n{}", o.stderr);
        }
        assert!(!o.stderr.contains("found a number") && !o.stderr.contains("<invisible>"), "{file}: {}", o.stderr);
    }
}

/// Issue 23, cause 1: the spec's path reaches the docstring headers of the generated model.py and
/// train.py; a path with triple quotes, backslashes or control characters must neither run code
/// nor break the file, and the header must still name the path.
#[test]
fn hostile_spec_paths_reach_generated_python_as_text() {
    let d = tmp("codegen-path");
    let spec = std::fs::read_to_string(repo().join("experiments/smoke/synthetic.exp")).unwrap();
    let names = [r#"x"""+str(__import__("os").system("touch PWNED"))+""".exp"#, r"a\N.exp", r"a\x4.exp", "q\"\"\"\\.exp", "rtl\u{202e}mark.exp"];
    for (i, name) in names.iter().enumerate() {
        let path = d.join(name);
        std::fs::write(&path, &spec).unwrap();
        let out_dir = d.join(format!("out{i}"));
        let o = expc(&d, &["export", "torch", path.to_str().unwrap(), "-o", out_dir.to_str().unwrap()]);
        assert_eq!(o.code, Some(0), "export of {name:?}\nstderr:\n{}", o.stderr);
        for file in ["model.py", "train.py"] {
            let py = out_dir.join(file);
            // Parse and compile without importing (torch may be absent); read the docstring back.
            let check = "import ast,sys\nt=open(sys.argv[1],encoding='utf-8').read()\ncompile(t,sys.argv[1],'exec')\nprint(ast.get_docstring(ast.parse(t)).splitlines()[0])";
            let Ok(p) = Command::new("python3").arg("-c").arg(check).arg(&py).output() else {
                eprintln!("note: no python3: the generated files of {name:?} were not compiled");
                return;
            };
            let stderr = String::from_utf8_lossy(&p.stderr);
            assert!(p.status.success(), "{file} of {name:?} does not compile:\n{stderr}");
            let first = String::from_utf8_lossy(&p.stdout);
            assert!(first.contains(path.to_str().unwrap()), "{file} of {name:?}: the header does not name the path: {first}");
        }
        assert!(!d.join("PWNED").exists() && !out_dir.join("PWNED").exists(), "code ran from the name {name:?}");
    }
}

/// Issue 23, cause 3: `-o` naming a FIFO (as a device like `/dev/null` would) is written through,
/// not replaced by a regular file; `-o` naming a file still gets the whole page.
#[test]
fn output_to_a_fifo_is_written_through_not_replaced() {
    use std::os::unix::fs::FileTypeExt;
    let d = tmp("out-fifo");
    let fifo = d.join("page.html");
    assert!(mkfifo(&fifo), "mkfifo");
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut s = String::new();
            std::fs::File::open(&fifo).and_then(|mut f| f.read_to_string(&mut s)).map(|_| s)
        })
    };
    let spec = repo().join("experiments/smoke/synthetic.exp");
    let o = expc(&d, &["compile", "--report", "--format", "html", spec.to_str().unwrap(), "-o", fifo.to_str().unwrap()]);
    assert_eq!(o.code, Some(0), "stderr:\n{}", o.stderr);
    let page = reader.join().unwrap().expect("read the fifo");
    assert!(page.contains("<html"), "the page went through the fifo: {} bytes", page.len());
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "the fifo was replaced");
    let file = d.join("page2.html");
    std::fs::write(&file, "old").unwrap();
    let o = expc(&d, &["compile", "--report", "--format", "html", spec.to_str().unwrap(), "-o", file.to_str().unwrap()]);
    assert_eq!(o.code, Some(0), "stderr:\n{}", o.stderr);
    assert!(std::fs::read_to_string(&file).unwrap().contains("<html"));
    let left: Vec<_> = std::fs::read_dir(&*d).unwrap().flatten().map(|e| e.file_name()).filter(|n| n.to_string_lossy().contains("tmp")).collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

/// Issue 23, cause 8: thread counts obey one rule (1 to 1024) from a flag, `EXPC_THREADS` and
/// `expc.toml`; gradcheck refuses a tolerance that is not a positive number and a batch of 0.
#[test]
fn thread_counts_and_gradcheck_values_are_refused_not_misread() {
    let d = tmp("bad-values");
    let spec = d.join("s.exp");
    std::fs::copy(repo().join("experiments/smoke/synthetic.exp"), &spec).unwrap();
    let s = spec.to_str().unwrap();
    let o = expc(&d, &["compile", "--report", s, "--threads", "18446744073709551615"]);
    o.user_error("E0031", "--threads 2^64-1");
    let o = expc(&d, &["run", s, "--threads", "0", "--iterations", "1", "--quiet", "--out", "runs"]);
    o.user_error("E0031", "--threads 0");
    let o = run_cmd(
        {
            let mut c = command(&d, &["compile", "--report", s]);
            c.env("EXPC_THREADS", "0");
            c
        },
        "EXPC_THREADS=0",
    );
    o.user_error("E0031", "EXPC_THREADS=0");
    std::fs::write(d.join("expc.toml"), "[run]\nthreads = 0\n").unwrap();
    let o = expc(&d, &["compile", "--report", s]);
    o.user_error("E0030", "threads = 0 in expc.toml");
    std::fs::remove_file(d.join("expc.toml")).unwrap();
    for (arg, what) in [("--tolerance=NaN", "tolerance NaN"), ("--tolerance=-1", "tolerance -1"), ("--batch=0", "batch 0")] {
        let o = expc(&d, &["gradcheck", s, arg]);
        o.user_error("E0031", what);
    }
}
