//! Enumerating the Services that hold an allocation (for the controller's
//! sweep of Services deleted while no watch saw it).

impl super::Allocator {
    /// The keys of every Service holding an allocation, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.services.keys().map(|k| &**k)
    }
}
