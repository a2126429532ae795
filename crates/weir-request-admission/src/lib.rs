//! weir's request admission: per provider/model/domain adaptive limits under a static cap, fair waiters, cancellation-safe leases.
