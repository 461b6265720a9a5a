//! One request budget for every PHP process of the host (or, with Redis, of
//! the fleet): at most `limit` API requests arrive at amoCRM in any window
//! of one second.
//!
//! amoCRM allows 7 requests per second per integration, answers 429 above
//! that, and blocks the whole account with 403 when it keeps happening.
//!
//! The budget is `limit` slots. A request takes one just before it is sent
//! and holds it until a window after its answer came back (or it failed):
//! a slot is free again only once the request it carried has certainly
//! arrived more than a window ago, so the rule holds for arrivals, not just
//! for sends, whatever the latency and however long a process waited to be
//! scheduled between taking its slot and sending. While a request is in
//! flight its slot is held until its deadline (`connect_timeout` +
//! `timeout`) plus a window, so that a process killed mid-request frees its
//! slot by then.
//!
//! A slot is one number, the time (µs, the budget's clock) until which it
//! is held; taking a free slot is one compare-and-swap, so a request that
//! does not wait pays two atomic operations for the limiter.

use crate::error::{Error, ErrorKind, Result};
use crate::state::Budget;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub const WINDOW: Duration = Duration::from_secs(1);
/// Give up waiting for a slot after this long (another process flooding).
const MAX_WAIT: Duration = Duration::from_secs(60);
/// How soon a waiter looks again when the slot that frees first is held by
/// a request still in flight: its answer may come back at any moment.
pub const POLL: Duration = Duration::from_millis(5);
/// The longest a slot can legitimately be held (the largest connect_timeout
/// and timeout, and a window): a slot held for longer than this from now
/// was taken before the clock went back, and is free.
pub const MAX_HOLD: Duration = Duration::from_secs(300 + 600 + 1);

/// A taken slot: which one, and the hold written into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub index: u32,
    pub held_until: u64,
}

/// Which slots this process is using, as the kernel sees it: a lock per
/// slot that the kernel drops when the process dies, so that a request
/// killed in flight does not hold its slot until its deadline.
pub trait Claims {
    /// Marks slot `i` as this process's; false if a live process has it.
    fn claim(&self, i: usize) -> bool;
    fn unclaim(&self, i: usize);
    /// Whether a slot in flight that can be claimed has lost its holder.
    fn tells_death(&self) -> bool;
}

/// No claims: one process (or a backend that cannot tell), where a slot in
/// flight is held until its deadline.
pub struct Unclaimed;

impl Claims for Unclaimed {
    fn claim(&self, _: usize) -> bool {
        true
    }
    fn unclaim(&self, _: usize) {}
    fn tells_death(&self) -> bool {
        false
    }
}

/// Takes a free slot among `slots` for a request that may last `hold_us`,
/// or says how many µs to wait. The algorithm of the shared-memory budget;
/// the Redis budget runs the same rule (without claims) in Lua.
///
/// A slot whose holder died in flight (its claim is free) is held for a
/// window from now: its request may have arrived just before the death.
pub fn take_slot(
    slots: &[AtomicU64],
    claims: &dyn Claims,
    now: u64,
    hold_us: u64,
    window_us: u64,
) -> std::result::Result<Ticket, u64> {
    let poll = POLL.as_micros() as u64;
    let free = |held: u64| held <= now || held > now + MAX_HOLD.as_micros() as u64;
    let in_flight = |held: u64| !free(held) && held - now > window_us;
    // How long a held slot keeps us waiting: to its end, or, while its
    // request is in flight, until we look again.
    let wait_for = |held: u64| {
        if in_flight(held) || held <= now {
            poll
        } else {
            held - now
        }
    };
    // A slot whose holder may have died is looked at under its claim.
    let open = |held: u64| free(held) || (in_flight(held) && claims.tells_death());
    let mut wait = u64::MAX;
    let held_until = now + hold_us + window_us;
    for (index, slot) in slots.iter().enumerate() {
        let held = slot.load(Ordering::Acquire);
        if !open(held) {
            wait = wait.min(wait_for(held));
            continue;
        }
        if !claims.claim(index) {
            // A live process has it, or is taking it this instant.
            wait = wait.min(poll);
            continue;
        }
        // With the claim held, no live process is using the slot.
        let held = slot.load(Ordering::Acquire);
        let (new, taken) = if free(held) {
            (held_until, true)
        } else if in_flight(held) && claims.tells_death() {
            (now + window_us, false)
        } else {
            (held, false)
        };
        if new != held
            && slot
                .compare_exchange(held, new, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            && taken
        {
            return Ok(Ticket {
                index: index as u32,
                held_until,
            });
        }
        claims.unclaim(index);
        wait = wait.min(wait_for(slot.load(Ordering::Acquire)));
    }
    Err(wait.max(1))
}

/// The request that took `ticket` is over at `now`: its slot frees a
/// window later — unless the slot was taken over meanwhile (the request
/// outlived its deadline) — and its claim is dropped.
pub fn release_slot(
    slots: &[AtomicU64],
    claims: &dyn Claims,
    ticket: Ticket,
    now: u64,
    window_us: u64,
) {
    if let Some(slot) = slots.get(ticket.index as usize) {
        let _ = slot.compare_exchange(
            ticket.held_until,
            now + window_us,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
        claims.unclaim(ticket.index as usize);
    }
}

/// A slot held by a request; dropping it (the request is over, answered or
/// failed) starts the slot's last window.
pub struct Slot<'a> {
    budget: &'a dyn Budget,
    ticket: Option<Ticket>,
    /// How long the caller waited for it.
    pub waited: Duration,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.budget.release(ticket);
        }
    }
}

/// Waits until a request may be sent within `limit` per `WINDOW` (0 = no
/// limit) and takes a slot for a request that may last `hold`.
pub fn acquire(budget: &dyn Budget, limit: u32, hold: Duration) -> Result<Slot<'_>> {
    acquire_within(budget, limit, hold, MAX_WAIT)
}

/// `acquire`, waiting at most `max_wait`.
pub fn acquire_within(
    budget: &dyn Budget,
    limit: u32,
    hold: Duration,
    max_wait: Duration,
) -> Result<Slot<'_>> {
    let mut slot = Slot {
        budget,
        ticket: None,
        waited: Duration::ZERO,
    };
    if limit == 0 {
        return Ok(slot);
    }
    let started = std::time::Instant::now();
    let mut slept = false;
    loop {
        match budget.take(limit, hold)? {
            Ok(ticket) => {
                slot.ticket = Some(ticket);
                if slept {
                    slot.waited = started.elapsed();
                }
                return Ok(slot);
            }
            Err(wait) => {
                let waited = started.elapsed();
                if waited + wait > max_wait {
                    return Err(Error::new(
                        ErrorKind::RateLimit,
                        format!(
                            "waited {} s for the shared rate limit ({limit} requests per second) without a free slot",
                            waited.as_secs()
                        ),
                    )
                    .with_title("Rate limit"));
                }
                std::thread::sleep(wait);
                slept = true;
            }
        }
    }
}

/// Takes a slot if one is free now (or there is no limit); never waits.
pub fn try_acquire(budget: &dyn Budget, limit: u32, hold: Duration) -> Result<Option<Slot<'_>>> {
    if limit == 0 {
        return acquire(budget, 0, hold).map(Some);
    }
    Ok(budget.take(limit, hold)?.ok().map(|ticket| Slot {
        budget,
        ticket: Some(ticket),
        waited: Duration::ZERO,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u64 = 1_000_000;

    fn slots(n: usize) -> Vec<AtomicU64> {
        (0..n).map(|_| AtomicU64::new(0)).collect()
    }

    #[test]
    fn a_slot_frees_a_window_after_its_request_ends() {
        let s = slots(2);
        let a = take_slot(&s, &Unclaimed, 10 * W, 30 * W, W).unwrap();
        let b = take_slot(&s, &Unclaimed, 10 * W, 30 * W, W).unwrap();
        assert_ne!(a.index, b.index);
        // Both in flight: look again soon, the answer may be back any moment.
        assert_eq!(
            take_slot(&s, &Unclaimed, 10 * W + 5, 30 * W, W),
            Err(POLL.as_micros() as u64)
        );
        // One answer comes back 200 ms later: its slot frees a window after that.
        release_slot(&s, &Unclaimed, a, 10 * W + 200_000, W);
        assert_eq!(
            take_slot(&s, &Unclaimed, 10 * W + 300_000, 30 * W, W),
            Err(900_000.min(POLL.as_micros() as u64))
        );
        release_slot(&s, &Unclaimed, b, 10 * W + 300_000, W);
        assert_eq!(
            take_slot(&s, &Unclaimed, 10 * W + 400_000, 30 * W, W),
            Err(800_000)
        );
        let c = take_slot(&s, &Unclaimed, 11 * W + 200_000, 30 * W, W).unwrap();
        assert_eq!(c.index, a.index);
    }

    #[test]
    fn a_request_killed_in_flight_frees_its_slot_after_its_deadline() {
        let s = slots(1);
        take_slot(&s, &Unclaimed, 10 * W, 30 * W, W).unwrap();
        assert!(take_slot(&s, &Unclaimed, 40 * W, 30 * W, W).is_err());
        assert!(take_slot(&s, &Unclaimed, 41 * W, 30 * W, W).is_ok());
    }

    #[test]
    fn a_late_release_does_not_free_a_slot_taken_over() {
        let s = slots(1);
        let old = take_slot(&s, &Unclaimed, 10 * W, 30 * W, W).unwrap();
        let new = take_slot(&s, &Unclaimed, 41 * W, 30 * W, W).unwrap();
        release_slot(&s, &Unclaimed, old, 42 * W, W);
        assert_eq!(s[0].load(Ordering::Relaxed), new.held_until);
    }

    #[test]
    fn a_clock_that_went_back_frees_the_slots() {
        let s = slots(1);
        take_slot(&s, &Unclaimed, 10_000 * W, 30 * W, W).unwrap();
        assert!(take_slot(&s, &Unclaimed, 10 * W, 30 * W, W).is_ok());
    }

    /// Threads standing in for processes, each request "arriving" at a
    /// random moment between taking its slot and releasing it: never more
    /// than `limit` arrivals in any window.
    #[test]
    fn never_more_than_limit_arrivals_in_a_window() {
        use std::sync::{Arc, Mutex};
        let limit = 3usize;
        let window = Duration::from_millis(200);
        let shared: Arc<Vec<AtomicU64>> = Arc::new(slots(limit));
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let start = std::time::Instant::now();
        let now = move || start.elapsed().as_micros() as u64 + 1;
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (shared, arrivals) = (shared.clone(), arrivals.clone());
                std::thread::spawn(move || {
                    for _ in 0..4 {
                        let ticket = loop {
                            match take_slot(
                                &shared,
                                &Unclaimed,
                                now(),
                                5_000_000,
                                window.as_micros() as u64,
                            ) {
                                Ok(t) => break t,
                                Err(wait) => std::thread::sleep(Duration::from_micros(wait)),
                            }
                        };
                        std::thread::sleep(Duration::from_millis(fastrand::u64(0..20)));
                        arrivals.lock().unwrap().push(now());
                        std::thread::sleep(Duration::from_millis(fastrand::u64(0..20)));
                        release_slot(
                            &shared,
                            &Unclaimed,
                            ticket,
                            now(),
                            window.as_micros() as u64,
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut a = arrivals.lock().unwrap().clone();
        a.sort();
        assert_eq!(a.len(), 16);
        for w in a.windows(limit + 1) {
            assert!(
                w[limit] - w[0] >= window.as_micros() as u64,
                "{} arrivals within {} µs: {a:?}",
                limit + 1,
                w[limit] - w[0]
            );
        }
    }
}
