//! The case state machine, with an append-only history.

use super::{Calendar, Category, Level, Source};
use serde::{Deserialize, Serialize};

/// States of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Reported,
    Accepted,
    Rejected,
    Opened,
    Dispatched,
    Handled,
    Verified,
    Closed,
    Returned,
    Suspended,
    Voided,
}

impl State {
    /// Finished states (no further work).
    #[must_use]
    pub fn is_final(self) -> bool {
        matches!(self, State::Closed | State::Rejected | State::Voided)
    }
    /// Open for the on-time reckoning (the clock runs).
    #[must_use]
    pub fn clock_runs(self) -> bool {
        !self.is_final() && self != State::Suspended
    }
}

/// What someone does to a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Accept,
    /// Invalid or duplicate report.
    Reject {
        reason: String,
    },
    /// 立案: the clock starts.
    Open,
    /// 派遣 to a responsible unit.
    Dispatch {
        unit: String,
    },
    /// 处置 reported done by the unit.
    Handle,
    /// 核查 on site: passed, or back to dispatched.
    Verify {
        passed: bool,
    },
    /// 结案.
    Close,
    /// 评价 after closing (1–5).
    Evaluate {
        score: u8,
    },
    /// 退回: the unit sends the case back for re-dispatch.
    Return {
        reason: String,
    },
    /// 延期: a new due time.
    Extend {
        until: i64,
        reason: String,
    },
    /// 挂账: suspended (the clock stops).
    Suspend {
        reason: String,
    },
    Resume,
    /// 作废.
    Void {
        reason: String,
    },
    /// Raised one level because the case was open at its due time (done by the system).
    Escalate,
}

impl Action {
    /// The action's name.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Reject { .. } => "reject",
            Action::Open => "open",
            Action::Dispatch { .. } => "dispatch",
            Action::Handle => "handle",
            Action::Verify { .. } => "verify",
            Action::Close => "close",
            Action::Evaluate { .. } => "evaluate",
            Action::Return { .. } => "return",
            Action::Extend { .. } => "extend",
            Action::Suspend { .. } => "suspend",
            Action::Resume => "resume",
            Action::Void { .. } => "void",
            Action::Escalate => "escalate",
        }
    }

    fn reason(&self) -> Option<&str> {
        match self {
            Action::Reject { reason }
            | Action::Return { reason }
            | Action::Extend { reason, .. }
            | Action::Suspend { reason }
            | Action::Void { reason } => Some(reason),
            _ => None,
        }
    }
}

/// One line of the append-only history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: i64,
    pub who: String,
    pub action: String,
    pub from: State,
    pub to: State,
    pub note: String,
}

/// A case (事件).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    pub id: String,
    pub category: String,
    pub description: String,
    pub lon: f64,
    pub lat: f64,
    pub source: Source,
    /// Private: visible only to dispatchers and administrators.
    pub reporter: Option<String>,
    pub media: Vec<String>,
    pub reported_at: i64,
    pub grid: Option<String>,
    pub community: Option<String>,
    pub street: Option<String>,
    pub state: State,
    pub level: Level,
    pub unit: Option<String>,
    pub due_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub escalations: u32,
    pub returns: u32,
    pub score: Option<u8>,
    /// A possible duplicate of this open case (same category, near in space and time).
    pub duplicate_of: Option<String>,
    pub history: Vec<HistoryEntry>,
}

/// A refused transition.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransitionError {
    #[error("case {id}: cannot {action} a case that is {state:?}; allowed now: {allowed:?}")]
    Illegal {
        id: String,
        action: String,
        state: State,
        allowed: Vec<&'static str>,
    },
    #[error("case {id}: {action} needs a reason")]
    NoReason { id: String, action: String },
    #[error("case {id}: {message}")]
    Invalid { id: String, message: String },
    /// The working calendar cannot give the due time (a year it does not cover).
    #[error("case {id}: {source}")]
    Calendar {
        id: String,
        source: super::calendar::CalendarError,
    },
}

/// The longest extension of a due time, seconds (366 days).
pub const MAX_EXTENSION: i64 = 366 * 24 * 3600;

impl Case {
    /// A new report, handled first at the category's level.
    #[must_use]
    #[expect(
        clippy::too_many_arguments,
        reason = "the inputs are distinct layers and settings; a struct would only rename them"
    )]
    pub fn report(
        id: String,
        cat: &Category,
        description: String,
        lon: f64,
        lat: f64,
        source: Source,
        reporter: Option<String>,
        at: i64,
    ) -> Case {
        Case {
            id,
            category: cat.code.clone(),
            description,
            lon,
            lat,
            source,
            reporter,
            media: Vec::new(),
            reported_at: at,
            grid: None,
            community: None,
            street: None,
            state: State::Reported,
            level: cat.level,
            unit: None,
            due_at: None,
            closed_at: None,
            escalations: 0,
            returns: 0,
            score: None,
            duplicate_of: None,
            history: Vec::new(),
        }
    }

    /// The actions allowed in the current state.
    #[must_use]
    pub fn allowed(&self) -> Vec<&'static str> {
        match self.state {
            State::Reported => vec!["accept", "reject", "void"],
            State::Accepted => vec!["open", "reject", "void"],
            State::Opened | State::Returned => vec!["dispatch", "suspend", "void", "escalate"],
            State::Dispatched => vec!["handle", "return", "extend", "suspend", "void", "escalate"],
            State::Handled => vec!["verify", "void"],
            State::Verified => vec!["close"],
            State::Suspended => vec!["resume", "void"],
            State::Closed => vec!["evaluate"],
            State::Rejected | State::Voided => vec![],
        }
    }

    /// Apply an action by `who` at time `at`; the history records it.
    ///
    /// # Errors
    /// An illegal transition (with the allowed list) or a missing reason.
    pub fn apply(
        &mut self,
        action: Action,
        who: &str,
        at: i64,
        cat: &Category,
        cal: &Calendar,
    ) -> Result<(), TransitionError> {
        let name = self.check_action(&action)?;
        let from = self.state;
        let mut note = action.reason().unwrap_or("").to_string();
        let to = match &action {
            Action::Accept => State::Accepted,
            Action::Reject { .. } => State::Rejected,
            Action::Open => {
                self.due_at = Some(self.due_from(at, cat, cal)?);
                State::Opened
            }
            Action::Dispatch { unit } => {
                note = self.dispatch(unit)?;
                State::Dispatched
            }
            Action::Handle => State::Handled,
            Action::Verify { passed: true } => State::Verified,
            Action::Verify { passed: false } => {
                note = "verification failed: back to the unit".into();
                State::Dispatched
            }
            Action::Close => {
                self.closed_at = Some(at);
                State::Closed
            }
            Action::Evaluate { score } => {
                note = self.evaluate(*score)?;
                State::Closed
            }
            Action::Return { .. } => {
                self.returns += 1;
                self.unit = None;
                State::Returned
            }
            Action::Extend { until, reason } => {
                note = self.extend(*until, reason, at)?;
                State::Dispatched
            }
            Action::Suspend { .. } => State::Suspended,
            Action::Resume => {
                let (before, resumed) = self.resume(at, cal)?;
                note = resumed;
                before
            }
            Action::Void { .. } => State::Voided,
            Action::Escalate => {
                note = self.escalate(at, cat, cal)?;
                from
            }
        };
        self.state = to;
        self.history.push(HistoryEntry {
            at,
            who: who.to_string(),
            action: name.into(),
            from,
            to,
            note,
        });
        Ok(())
    }

    /// The action's name when it is allowed now and its reason (if it takes one) is not blank.
    fn check_action(&self, action: &Action) -> Result<&'static str, TransitionError> {
        let name = action.name();
        if !self.allowed().contains(&name) {
            return Err(TransitionError::Illegal {
                id: self.id.clone(),
                action: name.into(),
                state: self.state,
                allowed: self.allowed(),
            });
        }
        if action.reason().is_some_and(|r| r.trim().is_empty()) {
            return Err(TransitionError::NoReason {
                id: self.id.clone(),
                action: name.into(),
            });
        }
        Ok(name)
    }

    /// The due time of a case opened (or escalated) at `at`, by its category's time limit on
    /// the working calendar.
    fn due_from(&self, at: i64, cat: &Category, cal: &Calendar) -> Result<i64, TransitionError> {
        cal.due_at(at, cat.limit)
            .map_err(|source| TransitionError::Calendar {
                id: self.id.clone(),
                source,
            })
    }

    /// Dispatch to `unit` (not blank); the history note.
    fn dispatch(&mut self, unit: &str) -> Result<String, TransitionError> {
        if unit.trim().is_empty() {
            return Err(TransitionError::Invalid {
                id: self.id.clone(),
                message: "dispatch needs a unit".into(),
            });
        }
        self.unit = Some(unit.to_string());
        Ok(format!("to {unit}"))
    }

    /// The resident's score, 1 to 5; the history note.
    fn evaluate(&mut self, score: u8) -> Result<String, TransitionError> {
        if !(1..=5).contains(&score) {
            return Err(TransitionError::Invalid {
                id: self.id.clone(),
                message: format!("score {score}: expected 1 to 5"),
            });
        }
        self.score = Some(score);
        Ok(format!("score {score}"))
    }

    /// Extend the due time to `until` (dispatched again); the history note.
    fn extend(&mut self, until: i64, reason: &str, at: i64) -> Result<String, TransitionError> {
        // a due time within a year of now: anything else is a mistake (and a year
        // 10000 would make every later read of the case fail)
        if until <= at || until > at + MAX_EXTENSION {
            return Err(TransitionError::Invalid {
                id: self.id.clone(),
                message: format!(
                    "until = {until}: expected a time after now and at most 366 days \
                     later ({} to {})",
                    crate::model::format_time(at),
                    crate::model::format_time(at + MAX_EXTENSION)
                ),
            });
        }
        if self.due_at.is_some_and(|d| until <= d) {
            return Err(TransitionError::Invalid {
                id: self.id.clone(),
                message: "an extension must move the due time later".into(),
            });
        }
        self.due_at = Some(until);
        Ok(format!(
            "until {}: {reason}",
            crate::model::format_time(until)
        ))
    }

    /// Resume a suspended case: back to where it was, with the working time it had left.
    /// The state to return to and the history note.
    fn resume(&mut self, at: i64, cal: &Calendar) -> Result<(State, String), TransitionError> {
        let (before, since) = self
            .history
            .iter()
            .rev()
            .find(|h| h.action == "suspend")
            .map_or((State::Dispatched, at), |h| (h.from, h.at));
        if let Some(d) = self.due_at {
            self.due_at = Some(cal.resumed_due(d, since, at).map_err(|source| {
                TransitionError::Calendar {
                    id: self.id.clone(),
                    source,
                }
            })?);
        }
        let note = match self.due_at {
            Some(d) => format!("due {}", crate::model::format_time(d)),
            None => String::new(),
        };
        Ok((before, note))
    }

    /// Escalate one level with a new due time from now; the history note.
    fn escalate(
        &mut self,
        at: i64,
        cat: &Category,
        cal: &Calendar,
    ) -> Result<String, TransitionError> {
        if self.level >= cat.max_level || !cat.escalate {
            return Err(TransitionError::Invalid {
                id: self.id.clone(),
                message: format!(
                    "already at the highest level for its category ({:?})",
                    self.level
                ),
            });
        }
        let old = self.level;
        self.level = self.level.up();
        self.escalations += 1;
        self.due_at = Some(self.due_from(at, cat, cal)?);
        Ok(format!("{old:?} → {:?}: open at its due time", self.level))
    }

    /// Overdue at `now`: the clock runs and the due time has passed.
    #[must_use]
    pub fn overdue(&self, now: i64) -> bool {
        self.state.clock_runs() && self.due_at.is_some_and(|d| now > d)
    }

    /// Closed within its due time.
    #[must_use]
    pub fn closed_on_time(&self) -> Option<bool> {
        match (self.closed_at, self.due_at) {
            (Some(c), Some(d)) => Some(c <= d),
            (Some(_), None) => Some(true),
            _ => None,
        }
    }

    /// Escalate if open past the due time (once per due time). Returns true when it escalated.
    pub fn escalate_if_due(&mut self, now: i64, cat: &Category, cal: &Calendar) -> bool {
        if matches!(
            self.state,
            State::Opened | State::Returned | State::Dispatched
        ) && self.overdue(now)
            && cat.escalate
            && self.level < cat.max_level
        {
            let at = self.due_at.unwrap_or(now);
            return self.apply(Action::Escalate, "system", at, cat, cal).is_ok();
        }
        false
    }
}

/// The open case of the same category within `metres` and `seconds` of a new report, if any.
#[must_use]
pub fn duplicate_hint<'a>(
    new: &Case,
    open: impl IntoIterator<Item = &'a Case>,
    metres: f64,
    seconds: i64,
) -> Option<&'a Case> {
    let f = crate::geom::frame::LocalFrame::new(new.lon, new.lat);
    let p = f.fwd(geo::Coord {
        x: new.lon,
        y: new.lat,
    });
    open.into_iter()
        .filter(|c| c.id != new.id && c.category == new.category && !c.state.is_final())
        .filter(|c| (new.reported_at - c.reported_at).abs() <= seconds)
        .filter(|c| {
            let q = f.fwd(geo::Coord { x: c.lon, y: c.lat });
            (p.x - q.x).hypot(p.y - q.y) <= metres
        })
        .min_by_key(|c| (new.reported_at - c.reported_at).abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::Catalogue;

    fn setup() -> (Catalogue, Calendar) {
        (Catalogue::default_catalogue(), Calendar::default_calendar())
    }

    fn t(s: &str) -> i64 {
        crate::model::parse_time_in(s, Calendar::default_calendar().offset).unwrap()
    }

    #[test]
    fn the_whole_loop_with_a_failed_verification() {
        let (cat, cal) = setup();
        let c = cat.get("02-01").unwrap();
        let mut k = Case::report(
            "1".into(),
            c,
            "垃圾".into(),
            111.3,
            30.7,
            Source::Patrol,
            None,
            t("2025-03-10 09:00"),
        );
        k.apply(Action::Accept, "dispatcher", t("2025-03-10 09:05"), c, &cal)
            .unwrap();
        k.apply(Action::Open, "dispatcher", t("2025-03-10 09:10"), c, &cal)
            .unwrap();
        assert_eq!(k.due_at, Some(t("2025-03-10 14:40"))); // 4 working hours across lunch
        k.apply(
            Action::Dispatch {
                unit: "环卫所".into(),
            },
            "dispatcher",
            t("2025-03-10 09:20"),
            c,
            &cal,
        )
        .unwrap();
        k.apply(Action::Handle, "环卫所", t("2025-03-10 11:00"), c, &cal)
            .unwrap();
        k.apply(
            Action::Verify { passed: false },
            "inspector",
            t("2025-03-10 11:30"),
            c,
            &cal,
        )
        .unwrap();
        assert_eq!(k.state, State::Dispatched);
        k.apply(Action::Handle, "环卫所", t("2025-03-10 13:40"), c, &cal)
            .unwrap();
        k.apply(
            Action::Verify { passed: true },
            "inspector",
            t("2025-03-10 14:00"),
            c,
            &cal,
        )
        .unwrap();
        k.apply(Action::Close, "dispatcher", t("2025-03-10 14:10"), c, &cal)
            .unwrap();
        k.apply(
            Action::Evaluate { score: 5 },
            "resident",
            t("2025-03-11 10:00"),
            c,
            &cal,
        )
        .unwrap();
        assert_eq!(k.closed_on_time(), Some(true));
        assert_eq!(k.history.len(), 9);
        assert_eq!(k.history[4].to, State::Dispatched);
    }

    #[test]
    fn illegal_transitions_list_what_is_allowed() {
        let (cat, cal) = setup();
        let c = cat.get("02-01").unwrap();
        let mut k = Case::report(
            "2".into(),
            c,
            String::new(),
            0.0,
            0.0,
            Source::Hotline,
            None,
            0,
        );
        let e = k.apply(Action::Close, "x", 1, c, &cal).unwrap_err();
        match e {
            TransitionError::Illegal { allowed, .. } => {
                assert_eq!(allowed, vec!["accept", "reject", "void"])
            }
            other => panic!("{other:?}"),
        }
        let e = k
            .apply(Action::Void { reason: " ".into() }, "x", 1, c, &cal)
            .unwrap_err();
        assert!(matches!(e, TransitionError::NoReason { .. }));
        assert!(k.history.is_empty(), "refused actions leave no trace");
    }

    #[test]
    fn open_at_due_time_escalates_one_level() {
        let (cat, cal) = setup();
        let c = cat.get("02-04").unwrap(); // noise: grid level, 2 working hours
        let mut k = Case::report(
            "3".into(),
            c,
            String::new(),
            0.0,
            0.0,
            Source::ResidentApp,
            None,
            t("2025-03-10 09:00"),
        );
        for a in [
            Action::Accept,
            Action::Open,
            Action::Dispatch {
                unit: "网格员".into(),
            },
        ] {
            k.apply(a, "d", t("2025-03-10 09:00"), c, &cal).unwrap();
        }
        assert!(!k.escalate_if_due(t("2025-03-10 10:00"), c, &cal));
        assert!(k.escalate_if_due(t("2025-03-10 12:00"), c, &cal));
        assert_eq!(k.level, Level::Community);
        assert_eq!(k.history.last().unwrap().action, "escalate");
    }

    /// 挂账: resuming returns to the state before the suspension, the due time moves by the
    /// working time spent suspended, and nothing escalates meanwhile.
    #[test]
    fn suspension_stops_the_clock_and_resumes_where_it_was() {
        let (cat, cal) = setup();
        let c = cat.get("02-04").unwrap(); // 2 working hours
        let mut k = Case::report(
            "9".into(),
            c,
            String::new(),
            0.0,
            0.0,
            Source::ResidentApp,
            None,
            t("2025-03-10 09:00"),
        );
        for a in [Action::Accept, Action::Open] {
            k.apply(a, "d", t("2025-03-10 09:00"), c, &cal).unwrap();
        }
        assert_eq!(k.due_at, Some(t("2025-03-10 11:00")));
        // suspended from Opened at 10:00 with 1 working hour left
        k.apply(
            Action::Suspend {
                reason: "awaiting the owner".into(),
            },
            "d",
            t("2025-03-10 10:00"),
            c,
            &cal,
        )
        .unwrap();
        assert!(!k.overdue(t("2025-03-12 10:00")));
        assert!(!k.escalate_if_due(t("2025-03-12 10:00"), c, &cal));
        // resumed Wednesday 16:30: 1 h left → 17:30
        k.apply(Action::Resume, "d", t("2025-03-12 16:30"), c, &cal)
            .unwrap();
        assert_eq!(
            k.state,
            State::Opened,
            "back to where it was, not dispatched"
        );
        assert_eq!(k.unit, None);
        assert_eq!(k.due_at, Some(t("2025-03-12 17:30")));
        assert!(!k.overdue(t("2025-03-12 17:00")) && k.overdue(t("2025-03-12 17:31")));
    }

    #[test]
    fn duplicates_are_hinted() {
        let (cat, _) = setup();
        let c = cat.get("02-01").unwrap();
        let a = Case::report(
            "a".into(),
            c,
            String::new(),
            111.3,
            30.7,
            Source::Patrol,
            None,
            1000,
        );
        let b = Case::report(
            "b".into(),
            c,
            String::new(),
            111.3001,
            30.7001,
            Source::Hotline,
            None,
            1600,
        );
        let far = Case::report(
            "c".into(),
            c,
            String::new(),
            111.31,
            30.7,
            Source::Hotline,
            None,
            1600,
        );
        assert_eq!(
            duplicate_hint(&b, [&a], 50.0, 3600).map(|x| x.id.as_str()),
            Some("a")
        );
        assert!(duplicate_hint(&far, [&a], 50.0, 3600).is_none());
    }
}
