//! weir's start-time fair queue core and shared fast hasher, used by both admission crates.
//!
//! `weir-task-admission`'s `FairTaskQueue` and `weir-request-admission`'s waiter queue order
//! their groups with the same start-time fair queueing (SFQ), the same exact tag arithmetic and
//! the same tie-break rule, all from here; each keeps its own membership and eligibility rules.
//! The two admission crates never depend on each other; both depend on this leaf crate, which
//! depends on no weir crate and needs no async runtime.
//!
//! # Using it alone
//!
//! Depend on this crate only:
//!
//! ```toml
//! [dependencies]
//! weir-fair = { path = "…/crates/weir-fair" }
//! ```
//!
//! ```
//! use weir_fair::FairQueue;
//!
//! // Two groups, weights 2 and 1, each a FIFO of items; the light one is enqueued first.
//! let mut queue = FairQueue::new();
//! for i in 0..3 {
//!     queue.push(&"light", 1, format!("light-{i}"));
//! }
//! for i in 0..4 {
//!     queue.push(&"heavy", 2, format!("heavy-{i}"));
//! }
//! let mut order = Vec::new();
//! // `select` offers each group's head in fair order; the caller's predicate decides what is
//! // eligible (here: everything), and `pop` serves the chosen head.
//! while let Some((slot, _head)) = queue.select(|_item| true) {
//!     order.push(queue.pop(slot).unwrap());
//! }
//! // Equal start tags go to the heavier group; then two heavy picks per light one.
//! assert_eq!(
//!     order,
//!     ["heavy-0", "light-0", "heavy-1", "heavy-2", "light-1", "heavy-3", "light-2"]
//! );
//! ```
//!
//! # The rule
//!
//! Virtual time `vt` and tags are exact fixed-point `u128` ([`TAG_SCALE`] per unit of work at
//! weight 1; a pick of a weight-`w` group costs [`tag_step`]`(w)` = `TAG_SCALE / w`).
//!
//! - A group that becomes backlogged starts at `S = max(vt, F)` ([`start_tag`]), `F` being the
//!   tag it left with: an idle group cannot bank credit.
//! - Serving a group's head sets `vt = max(vt, S)` and the group's next start tag to
//!   `S + TAG_SCALE / w`. A group emptied without being served leaves with its `S`.
//! - When no group is backlogged, `vt` rises to every idle group's tag (a new busy period starts
//!   every group level).
//! - **Tie-break** ([`FairKey`]'s order): smallest start tag; then the heavier group; then the
//!   group whose current head joined the contention first (became backlogged, or had its
//!   previous pick, earlier).
//!
//! [`FairOrder`] is the item-free core over caller-numbered slots (for queues that keep their own
//! lanes and indexes, like `FairTaskQueue`); [`FairQueue`] adds keyed FIFO lanes on top. The
//! [`hash`] module is the one fast hasher both admission crates use (`rustc-hash`'s FxHash).

pub mod hash;
mod order;
mod queue;
mod tag;
mod tournament;

pub use order::{FairOrder, FairOrderIter, Forgotten};
pub use queue::{FairQueue, GroupSlot};
pub use tag::{start_tag, tag_step, FairKey, TAG_SCALE};
