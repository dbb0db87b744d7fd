//! Metric values for `/metrics`: each box reports the counters it owns into a
//! [`MetricSet`] at scrape time (nothing is recorded here on the hot path), and
//! `admin` encodes the set (prometheus-client, OpenMetrics text). Labels are
//! bounded: stream, rung/rendition, stage, route, status, reason.

use std::fmt::Write as _;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::telemetry::latency::{StageBuckets, BUCKETS_SECS};

/// A box that reports its own counters at scrape time.
pub trait Report: Send + Sync {
    fn report(&self, m: &mut MetricSet);
}

pub type Labels = Vec<(&'static str, String)>;

#[derive(Debug)]
enum Value {
    Counter(u64),
    CounterF(f64),
    Gauge(i64),
    GaugeF(f64),
    Histogram(StageBuckets),
}

#[derive(Debug)]
struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    samples: Vec<(Labels, Value)>,
}

/// One scrape's worth of values, encoded by prometheus-client. Each box adds
/// its own families from the counters it owns (see [`Report`]).
#[derive(Debug, Default)]
pub struct MetricSet {
    families: Vec<Family>,
}

impl MetricSet {
    fn family(
        &mut self,
        name: &'static str,
        help: &'static str,
        kind: MetricType,
    ) -> &mut Vec<(Labels, Value)> {
        if let Some(i) = self.families.iter().position(|f| f.name == name) {
            return &mut self.families[i].samples;
        }
        self.families.push(Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        });
        let last = self.families.len() - 1;
        &mut self.families[last].samples
    }
    pub fn counter(&mut self, name: &'static str, help: &'static str, labels: Labels, v: u64) {
        self.family(name, help, MetricType::Counter)
            .push((labels, Value::Counter(v)));
    }
    pub fn counter_f(&mut self, name: &'static str, help: &'static str, labels: Labels, v: f64) {
        self.family(name, help, MetricType::Counter)
            .push((labels, Value::CounterF(v)));
    }
    pub fn gauge(&mut self, name: &'static str, help: &'static str, labels: Labels, v: i64) {
        self.family(name, help, MetricType::Gauge)
            .push((labels, Value::Gauge(v)));
    }
    pub fn gauge_f(&mut self, name: &'static str, help: &'static str, labels: Labels, v: f64) {
        self.family(name, help, MetricType::Gauge)
            .push((labels, Value::GaugeF(v)));
    }
    pub fn histogram(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: Labels,
        b: StageBuckets,
    ) {
        self.family(name, help, MetricType::Histogram)
            .push((labels, Value::Histogram(b)));
    }
}

impl Collector for MetricSet {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.families {
            let mut family = encoder.encode_descriptor(f.name, f.help, None, f.kind)?;
            for (labels, value) in &f.samples {
                let m = family.encode_family(labels)?;
                match value {
                    Value::Counter(v) => ConstCounter::new(*v).encode(m)?,
                    Value::CounterF(v) => ConstCounter::new(*v).encode(m)?,
                    Value::Gauge(v) => ConstGauge::new(*v).encode(m)?,
                    Value::GaugeF(v) => ConstGauge::new(*v).encode(m)?,
                    Value::Histogram(b) => {
                        let mut m = m;
                        // Per-bucket (not cumulative) counts, with +Inf last.
                        let mut buckets: Vec<(f64, u64)> =
                            Vec::with_capacity(BUCKETS_SECS.len() + 1);
                        let mut prev = 0;
                        for (bound, cum) in BUCKETS_SECS.iter().zip(&b.cumulative) {
                            buckets.push((*bound, cum.saturating_sub(prev)));
                            prev = *cum;
                        }
                        buckets.push((f64::INFINITY, b.count.saturating_sub(prev)));
                        m.encode_histogram::<Labels>(b.sum_secs, b.count, &buckets, None)?;
                    }
                }
            }
        }
        Ok(())
    }
}

pub fn l(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// The exposition in the classic Prometheus text format (0.0.4), for
/// scrapers and tools (promtool) that do not ask for OpenMetrics: counter
/// families are named with their `_total`, and `# EOF`/`# UNIT` go.
pub fn to_classic(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 256);
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (*p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) {
                    let _ = writeln!(out, "{prefix}{name}_total {tail}");
                } else {
                    let _ = writeln!(out, "{line}");
                }
            }
            None => {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    out
}

/// The whole exposition, OpenMetrics text, of what every source reports.
pub fn render(sources: &[&dyn Report]) -> String {
    let mut set = MetricSet::default();
    for s in sources {
        s.report(&mut set);
    }
    let mut registry = Registry::default();
    registry.register_collector(Box::new(set));
    let mut out = String::with_capacity(16 * 1024);
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear();
        let _ = writeln!(out, "# metrics encoding failed");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_text_names_counters_with_total() {
        let om = "# HELP a_b Things.\n# TYPE a_b counter\na_b_total{x=\"1\"} 3\n# HELP g A gauge.\n# TYPE g gauge\ng 1\n# EOF\n";
        assert_eq!(
            to_classic(om),
            "# HELP a_b_total Things.\n# TYPE a_b_total counter\na_b_total{x=\"1\"} 3\n# HELP g A gauge.\n# TYPE g gauge\ng 1\n"
        );
    }
}
