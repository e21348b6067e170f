use crate::abi::MetricType;

/// One stat as Envoy's stats store keeps it: shared by every VM that defines the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    pub name: String,
    pub kind: MetricType,
    /// Counter total or gauge value; 0 for histograms.
    pub value: u64,
    /// Every value recorded into a histogram.
    pub samples: Vec<u64>,
}

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    by_id: Vec<Metric>,
}

impl Metrics {
    /// Ids start at 1; defining an existing name returns its id (a kind mismatch is refused).
    pub fn define(&mut self, kind: MetricType, name: &str) -> Option<u32> {
        if let Some(index) = self.by_id.iter().position(|m| m.name == name) {
            return (self.by_id.get(index)?.kind == kind).then_some(index as u32 + 1);
        }
        self.by_id.push(Metric {
            name: name.to_string(),
            kind,
            value: 0,
            samples: Vec::new(),
        });
        Some(self.by_id.len() as u32)
    }

    pub fn get_mut(&mut self, id: u32) -> Option<&mut Metric> {
        self.by_id.get_mut((id as usize).checked_sub(1)?)
    }

    pub fn by_name(&self, name: &str) -> Option<&Metric> {
        self.by_id.iter().find(|m| m.name == name)
    }

    pub fn all(&self) -> &[Metric] {
        &self.by_id
    }
}
