//! Placeholder for the alarm set that is being rebuilt on its own branch: the active
//! alarms as today's quota check sees them (NOSPACE while the backend is over
//! `--quota-backend-bytes`). The real `Store::alarms` replaces this file.

use berth_proto::etcdserverpb::{AlarmMember, AlarmType};

use super::Store;

impl Store {
    /// The active alarms, cluster-wide.
    pub fn alarms(&self) -> Vec<AlarmMember> {
        if self.nospace_alarm() {
            vec![AlarmMember {
                member_id: self.id(),
                alarm: AlarmType::Nospace as i32,
            }]
        } else {
            Vec::new()
        }
    }
}
