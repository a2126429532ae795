//! weir's task admission: the weighted fair ready queue, the task lease ledger and its policies.
