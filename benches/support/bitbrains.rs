//! Bitbrains GWA-T-12 "Rnd": 40 business VMs' memory over three months at 5-minute
//! samples (daily cycles, batch bursts, near-capacity plateaus, drift, stable), read
//! from the folder `HEADROOM_BITBRAINS` names (`vm_NNN.csv.gz` and `index.csv`; its
//! README gives the origin and columns). Too large for the repository: benchmarks only.
//!
//! Each VM is cut into 14-day windows; a window is replayed as a daemon started at its
//! beginning would see it (6 h of backfill, then an evaluation every 30 s), against
//! the VM's provisioned memory. Nothing in the `daily`, `bursts`, `drift` and `stable`
//! groups comes near it, so every alert there is a false page.
//!
//! The split, named before looking: in `index.csv` order within each group, the VMs
//! at even positions (0, 2, …) are the tuning half and those at odd positions the
//! held-out half. Figures are printed for each half.

use std::io::Read;
use std::path::{Path, PathBuf};

use headroom::model::Sample;

/// How long a window is (ms).
pub const WINDOW_MS: i64 = 14 * 24 * 3_600_000;
/// A gap longer than this splits a VM's series: its history is not joined across
/// (a daemon would have forgotten the container, and backfills it anew).
const GAP_MS: i64 = 3_600_000;

/// One VM.
pub struct Vm {
    pub id: String,
    /// `daily`, `bursts`, `near_capacity`, `drift` or `stable`.
    pub group: String,
    /// Held out: not to tune on.
    pub held_out: bool,
    /// Provisioned memory (bytes): the median of the capacity column.
    pub limit: f64,
    /// Runs of samples without a long gap or a kill (a fall from the limit), in time
    /// order.
    pub runs: Vec<Vec<Sample>>,
}

/// The folder, or why there is none.
pub fn folder() -> Result<PathBuf, String> {
    let Some(dir) = std::env::var_os("HEADROOM_BITBRAINS") else {
        return Err("HEADROOM_BITBRAINS is not set: point it at a folder of Bitbrains GWA-T-12 Rnd VMs (vm_NNN.csv.gz and index.csv; the development machines have it at ../shared/data/real/bitbrains; the data set is the TU Delft Grid Workloads Archive's GWA-T-12)".into());
    };
    let dir = PathBuf::from(dir);
    if !dir.join("index.csv").is_file() {
        return Err(format!("{} has no index.csv", dir.display()));
    }
    Ok(dir)
}

/// Every VM of `index.csv`, read.
pub fn vms(dir: &Path) -> Vec<Vm> {
    let index = std::fs::read_to_string(dir.join("index.csv")).expect("index.csv");
    let mut lines = index.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let (vm_col, group_col) = (col("vm"), col("category"));
    let mut position: std::collections::BTreeMap<String, usize> = Default::default();
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let id = fields[vm_col].to_string();
            let group = fields[group_col].to_string();
            let n = position.entry(group.clone()).or_default();
            let held_out = *n % 2 == 1;
            *n += 1;
            let (limit, runs) = read_vm(&dir.join(format!("vm_{:0>3}.csv.gz", id)));
            // A fall from the limit to far below is a kill, as the store reads it.
            let runs = runs
                .into_iter()
                .flat_map(|run| {
                    let mut cuts = headroom::store::kill_points(&run, limit);
                    cuts.push(run.len());
                    let mut from = 0;
                    cuts.into_iter()
                        .map(|to| {
                            let piece = run[from..to].to_vec();
                            from = to;
                            piece
                        })
                        .collect::<Vec<_>>()
                })
                .filter(|r| !r.is_empty())
                .collect();
            Vm {
                id,
                group,
                held_out,
                limit,
                runs,
            }
        })
        .collect()
}

fn read_vm(path: &Path) -> (f64, Vec<Vec<Sample>>) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut caps = Vec::new();
    let mut rows = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<f64> = line
            .split(',')
            .map(|v| v.parse().unwrap_or(f64::NAN))
            .collect();
        let (t, cap, used) = (f[0], f[1], f[2]);
        if !(t.is_finite() && cap.is_finite() && used.is_finite() && cap > 0.0) {
            continue;
        }
        caps.push(cap * 1024.0);
        // A few rows read above the cap: clipped, as the data's README says.
        rows.push(Sample {
            at: (t * 1000.0) as i64,
            bytes: used.min(cap) * 1024.0,
        });
    }
    caps.sort_by(f64::total_cmp);
    let limit = caps[caps.len() / 2];
    let mut runs: Vec<Vec<Sample>> = Vec::new();
    for s in rows {
        match runs.last_mut() {
            Some(run) if s.at - run.last().expect("runs are not empty").at <= GAP_MS => run.push(s),
            _ => runs.push(vec![s]),
        }
    }
    (limit, runs)
}

/// What a daemon started at `start` reads back into a VM's long tier: the 14 days
/// before.
pub fn long_before(vm: &Vm, start: i64) -> headroom::store::LongTier {
    let mut long = headroom::store::LongTier::default();
    for s in vm.runs.iter().flatten() {
        if s.at >= start - WINDOW_MS && s.at < start {
            long.push(*s);
        }
    }
    long
}

/// A VM's 14-day windows: each its runs, cut to the window.
pub fn windows(vm: &Vm) -> Vec<(i64, Vec<Vec<Sample>>)> {
    let (Some(first), Some(last)) = (
        vm.runs.first().and_then(|r| r.first()),
        vm.runs.last().and_then(|r| r.last()),
    ) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut start = first.at;
    while start + WINDOW_MS <= last.at + 300_000 {
        let end = start + WINDOW_MS;
        let runs: Vec<Vec<Sample>> = vm
            .runs
            .iter()
            .map(|r| {
                r.iter()
                    .filter(|s| s.at >= start && s.at < end)
                    .copied()
                    .collect::<Vec<_>>()
            })
            .filter(|r| !r.is_empty())
            .collect();
        out.push((start, runs));
        start = end;
    }
    out
}
