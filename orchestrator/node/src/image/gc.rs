//! Image garbage collection as the kubelet does it: when the disk holding the images
//! is used at or above the high threshold, remove images no container uses, least
//! recently used first, until enough is freed to come down to the low threshold.
//! The plan is computed here without I/O; the store carries it out.

use std::collections::BTreeSet;

use super::store::Index;

/// `--image-gc-high-threshold` / `--image-gc-low-threshold`, in percent of the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcThresholds {
    pub high_percent: u8,
    pub low_percent: u8,
}

impl Default for GcThresholds {
    /// The kubelet's defaults.
    fn default() -> Self {
        GcThresholds {
            high_percent: 85,
            low_percent: 80,
        }
    }
}

/// The filesystem holding the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUsage {
    pub capacity_bytes: u64,
    pub available_bytes: u64,
}

impl DiskUsage {
    pub fn of(path: &std::path::Path) -> std::io::Result<DiskUsage> {
        let stat = rustix::fs::statvfs(path)?;
        Ok(DiskUsage {
            capacity_bytes: stat.f_blocks.saturating_mul(stat.f_frsize),
            available_bytes: stat.f_bavail.saturating_mul(stat.f_frsize),
        })
    }
}

/// The config digests of the images to remove, in removal order.
pub fn plan(index: &Index, in_use: &BTreeSet<String>, usage: DiskUsage, thresholds: GcThresholds) -> Vec<String> {
    if thresholds.high_percent >= 100 || usage.capacity_bytes == 0 {
        return Vec::new();
    }
    let used_percent = 100 - usage.available_bytes.saturating_mul(100) / usage.capacity_bytes;
    if used_percent < u64::from(thresholds.high_percent) {
        return Vec::new();
    }
    let target_available = usage.capacity_bytes / 100 * (100 - u64::from(thresholds.low_percent.min(100)));
    let to_free = target_available.saturating_sub(usage.available_bytes);
    let mut candidates: Vec<(&String, u64)> = index
        .images
        .iter()
        .filter(|(config, _)| !in_use.contains(*config))
        .map(|(config, image)| (config, image.last_used_ms))
        .collect();
    candidates.sort_by_key(|(config, last_used)| (*last_used, (*config).clone()));

    let mut remaining: BTreeSet<&String> = index.images.keys().collect();
    let mut freed = 0u64;
    let mut removed = Vec::new();
    for (config, _) in candidates {
        if freed >= to_free {
            break;
        }
        remaining.remove(config);
        let still_used: BTreeSet<&String> = remaining.iter().flat_map(|c| &index.images[*c].layers).collect();
        let mut own_layers: BTreeSet<&String> = index.images[config].layers.iter().collect();
        own_layers.retain(|l| !still_used.contains(l));
        // A layer counts once, when the last remaining image holding it goes.
        freed += own_layers
            .iter()
            .map(|l| index.layer_sizes.get(*l).copied().unwrap_or(0))
            .sum::<u64>();
        removed.push(config.clone());
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::store::ImageRecord;

    fn index(images: &[(&str, u64, &[&str])], sizes: &[(&str, u64)]) -> Index {
        let mut index = Index::default();
        for (config, last_used_ms, layers) in images {
            index.images.insert(
                config.to_string(),
                ImageRecord {
                    layers: layers.iter().map(|l| l.to_string()).collect(),
                    last_used_ms: *last_used_ms,
                    ..Default::default()
                },
            );
        }
        for (layer, size) in sizes {
            index.layer_sizes.insert(layer.to_string(), *size);
        }
        index
    }

    const GB: u64 = 1 << 30;

    #[test]
    fn nothing_is_removed_below_the_high_threshold() {
        let idx = index(&[("a", 1, &["l1"])], &[("l1", GB)]);
        let usage = DiskUsage {
            capacity_bytes: 100 * GB,
            available_bytes: 16 * GB,
        };
        assert!(plan(&idx, &BTreeSet::new(), usage, GcThresholds::default()).is_empty());
        let disabled = GcThresholds {
            high_percent: 100,
            low_percent: 80,
        };
        let full = DiskUsage {
            capacity_bytes: 100 * GB,
            available_bytes: 0,
        };
        assert!(plan(&idx, &BTreeSet::new(), full, disabled).is_empty());
    }

    #[test]
    fn unused_images_go_oldest_first_until_the_low_threshold() {
        // 90% used: 10 GB must be freed to come down to 80%.
        let idx = index(
            &[
                ("old", 1, &["l1"]),
                ("newer", 2, &["l2"]),
                ("newest", 3, &["l3"]),
                ("used", 0, &["l4"]),
            ],
            &[("l1", 6 * GB), ("l2", 6 * GB), ("l3", 6 * GB), ("l4", 50 * GB)],
        );
        let usage = DiskUsage {
            capacity_bytes: 100 * GB,
            available_bytes: 10 * GB,
        };
        let in_use = BTreeSet::from(["used".to_string()]);
        assert_eq!(plan(&idx, &in_use, usage, GcThresholds::default()), ["old", "newer"]);
    }

    #[test]
    fn a_layer_shared_with_a_kept_image_frees_nothing() {
        let idx = index(
            &[
                ("old", 1, &["base"]),
                ("next", 2, &["base", "top"]),
                ("kept", 3, &["base"]),
            ],
            &[("base", 20 * GB), ("top", 1 << 20)],
        );
        let usage = DiskUsage {
            capacity_bytes: 100 * GB,
            available_bytes: 10 * GB,
        };
        let in_use = BTreeSet::from(["kept".to_string()]);
        // Removing both unused images frees only "top": they go, and the disk stays full.
        assert_eq!(plan(&idx, &in_use, usage, GcThresholds::default()), ["old", "next"]);
    }
}
