//! Neighbourhood graphs of a SecAgg+ group.
//!
//! Each client masks its input only with its neighbours and Shamir-shares its
//! secrets among them with threshold `t`. Small groups use the complete graph;
//! large ones a `k`-regular Harary graph `H_{k,n}` with `k = O(log n)` (Bell et al.
//! CCS'20): the clients sit on a ring and each is linked to the `k/2` nearest on
//! each side; for odd `k` (only with even `n`) the diameter edges are added. The
//! threshold must satisfy `k/2 < t <= k`; the dropout tolerance is `k - t`
//! neighbours of any node.

use thiserror::Error;

/// Why a graph or group configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GraphError {
    /// A group needs at least two clients.
    #[error("a group of {0} clients is too small; at least 2 are needed")]
    GroupTooSmall(u32),
    /// The degree is zero or not below the group size.
    #[error(
        "degree {degree} is impossible for a group of {group_size}: it must be in 1..{group_size}"
    )]
    DegreeOutOfRange {
        /// Requested degree `k`.
        degree: u32,
        /// Group size `n`.
        group_size: u32,
    },
    /// An odd degree needs an even group size (a k-regular graph has `n k / 2` edges).
    #[error("odd degree {degree} needs an even group size, got {group_size}")]
    OddDegreeOddGroup {
        /// Requested degree `k`.
        degree: u32,
        /// Group size `n`.
        group_size: u32,
    },
    /// The threshold is not in `(k + c)/2 < t <= k`.
    #[error(
        "threshold {threshold} must be above (degree {degree} + corrupt members {corrupt}) / 2 \
         and at most the degree"
    )]
    ThresholdOutOfRange {
        /// Requested threshold `t`.
        threshold: u32,
        /// Degree `k`.
        degree: u32,
        /// Corrupt members tolerated `c`.
        corrupt: u32,
    },
}

/// An undirected regular graph on the clients `0..n`, as sorted neighbour lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighbourGraph {
    neighbours: Vec<Vec<u32>>,
    degree: u32,
}

/// The degree SecAgg+ uses for `group_size` clients: the smallest even
/// `k >= 2 * ceil(log2 n)`, capped at `n - 1` (the complete graph).
pub fn recommended_degree(group_size: u32) -> u32 {
    let log2_ceil = u32::BITS - group_size.saturating_sub(1).leading_zeros();
    let even = (2 * log2_ceil).next_multiple_of(2);
    even.min(group_size.saturating_sub(1))
}

/// The smallest threshold that holds against an active coordinator with
/// `corrupt` colluding members: `floor((k + c) / 2) + 1`.
pub fn recommended_threshold(degree: u32, corrupt: u32) -> u32 {
    (degree + corrupt) / 2 + 1
}

impl NeighbourGraph {
    /// The complete graph on `group_size` clients.
    pub fn complete(group_size: u32) -> Result<Self, GraphError> {
        if group_size < 2 {
            return Err(GraphError::GroupTooSmall(group_size));
        }
        let neighbours = (0..group_size)
            .map(|i| (0..group_size).filter(|&j| j != i).collect())
            .collect();
        Ok(Self {
            neighbours,
            degree: group_size - 1,
        })
    }

    /// The Harary graph `H_{k,n}`: ring neighbours within distance `k/2`, plus the
    /// diameter edge for odd `k` and even `n`. `k = n - 1` gives the complete graph.
    pub fn harary(group_size: u32, degree: u32) -> Result<Self, GraphError> {
        if group_size < 2 {
            return Err(GraphError::GroupTooSmall(group_size));
        }
        if degree == 0 || degree >= group_size {
            return Err(GraphError::DegreeOutOfRange { degree, group_size });
        }
        if degree % 2 == 1 && group_size % 2 == 1 {
            return Err(GraphError::OddDegreeOddGroup { degree, group_size });
        }
        // Ring arithmetic in u64 so `i + n` cannot overflow; results are below n.
        let n = u64::from(group_size);
        let half = u64::from(degree / 2);
        let on_ring = |value: u64| (value % n) as u32;
        let neighbours = (0..n)
            .map(|i| {
                let mut list: Vec<u32> = (1..=half)
                    .flat_map(|d| [on_ring(i + d), on_ring(i + n - d)])
                    .collect();
                if degree % 2 == 1 {
                    list.push(on_ring(i + n / 2));
                }
                list.sort_unstable();
                list.dedup();
                list
            })
            .collect();
        Ok(Self { neighbours, degree })
    }

    /// The graph SecAgg+ uses for `group_size` clients: degree
    /// [`recommended_degree`], complete when that reaches `n - 1`.
    pub fn for_group(group_size: u32) -> Result<Self, GraphError> {
        let degree = recommended_degree(group_size);
        if degree + 1 >= group_size {
            Self::complete(group_size)
        } else {
            Self::harary(group_size, degree)
        }
    }

    /// Number of clients `n`.
    pub fn group_size(&self) -> u32 {
        // The lists were built from a u32 size.
        self.neighbours.len() as u32
    }

    /// Degree `k` of every node.
    pub fn degree(&self) -> u32 {
        self.degree
    }

    /// The sorted neighbours of `client` (empty for an unknown client).
    pub fn neighbours(&self, client: u32) -> &[u32] {
        self.neighbours
            .get(client as usize)
            .map_or(&[], |list| list.as_slice())
    }

    /// Whether `a` and `b` are linked.
    pub fn are_neighbours(&self, a: u32, b: u32) -> bool {
        self.neighbours(a).binary_search(&b).is_ok()
    }

    /// Position of `neighbour` in the list of `client`, which is also its Shamir
    /// evaluation point minus one.
    pub fn position(&self, client: u32, neighbour: u32) -> Option<usize> {
        self.neighbours(client).binary_search(&neighbour).ok()
    }
}

/// A neighbourhood graph with its Shamir threshold and the number of
/// corrupt members it holds against, validated (see the module
/// documentation for the bound).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTopology {
    graph: NeighbourGraph,
    threshold: u32,
    corrupt: u32,
}

impl GroupTopology {
    /// Checks `(k + c)/2 < threshold <= k` for the graph's degree `k` and
    /// `c = corrupt`. That also bounds `c <= k - 1`, so a group always holds
    /// [`GroupTopology::min_survivors`] members.
    pub fn new(graph: NeighbourGraph, threshold: u32, corrupt: u32) -> Result<Self, GraphError> {
        let degree = graph.degree();
        let above_split_view = 2 * u64::from(threshold) > u64::from(degree) + u64::from(corrupt);
        if !above_split_view || threshold > degree {
            return Err(GraphError::ThresholdOutOfRange {
                threshold,
                degree,
                corrupt,
            });
        }
        Ok(Self {
            graph,
            threshold,
            corrupt,
        })
    }

    /// [`NeighbourGraph::for_group`] with [`recommended_threshold`].
    pub fn for_group(group_size: u32, corrupt: u32) -> Result<Self, GraphError> {
        let graph = NeighbourGraph::for_group(group_size)?;
        let threshold = recommended_threshold(graph.degree(), corrupt);
        Self::new(graph, threshold, corrupt)
    }

    /// Corrupt members `c` the threshold holds against.
    pub fn corrupt(&self) -> u32 {
        self.corrupt
    }

    /// The fewest members whose inputs a revealed sum may cover: the
    /// threshold, and at least two honest inputs beside `c` corrupt ones,
    /// so that colluders subtracting their own inputs are left with a sum of
    /// two or more honest updates, never one.
    pub fn min_survivors(&self) -> u32 {
        self.threshold.max(self.corrupt.saturating_add(2))
    }

    /// The graph.
    pub fn graph(&self) -> &NeighbourGraph {
        &self.graph
    }

    /// The Shamir threshold `t`.
    pub fn threshold(&self) -> u32 {
        self.threshold
    }

    /// How many neighbours of any node may drop while at least `t` survive: `k - t`.
    pub fn dropout_tolerance(&self) -> u32 {
        self.graph.degree() - self.threshold
    }
}
