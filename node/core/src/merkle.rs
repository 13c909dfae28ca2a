//! Merkle tree math of the origin log: RFC 9162 §2.1 with SHA-256.
//!
//! Leaf hash `H(0x00 ‖ data)`, node hash `H(0x01 ‖ left ‖ right)`, and the
//! empty tree's head `H("")` (<https://www.rfc-editor.org/rfc/rfc9162#section-2.1>).
//!
//! A log stores the roots of **perfect aligned subtrees** only: node
//! `(level k, index i)` is the root of leaves `[i·2^k, (i+1)·2^k)`. Such a
//! node never changes once complete, so it is written once, when its last
//! leaf is appended ([`append_nodes`]). Every subtree the RFC's algorithms
//! need (`MTH(D[start:end])` with `start` a multiple of the next power of two
//! of `end - start`) splits into O(log n) of those nodes, which is how
//! [`root`], [`inclusion_proof`] and [`consistency_proof`] answer from any
//! [`NodeStore`]. [`verify_inclusion`] and [`verify_consistency`] follow the
//! RFC's verification steps literally and need no store.

use std::convert::Infallible;

use sha2::{Digest, Sha256};

/// A SHA-256 digest: a leaf hash, a node hash or a tree head.
pub type Hash = [u8; 32];

/// The tree head of the empty tree: SHA-256 of the empty string.
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// `H(0x00 ‖ data)`: the hash of one log entry (the entry's envelope bytes).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// `H(0x01 ‖ left ‖ right)`: the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Why a proof was refused or a request could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    /// A consistency proof was asked between a larger and a smaller tree.
    #[error("tree size {old_size} is larger than tree size {new_size}")]
    SizeOutOfRange { old_size: u64, new_size: u64 },
    /// `[start, end)` is not a subtree of the RFC's recursion (it must be
    /// non-empty and start at a multiple of the next power of two of its size).
    #[error("leaves [{start}, {end}) do not form a subtree")]
    UnalignedRange { start: u64, end: u64 },
    /// The proof has more or fewer hashes than the sizes call for.
    #[error("proof has {found} hashes, the tree sizes call for {expected}")]
    WrongProofLength { expected: usize, found: usize },
    /// The inclusion proof does not lead from the leaf to the tree head.
    #[error("inclusion proof does not lead to the tree head")]
    RootMismatch,
    /// The consistency proof does not reproduce the older tree head.
    #[error("consistency proof does not reproduce the old tree head")]
    OldRootMismatch,
    /// The consistency proof does not reproduce the newer tree head.
    #[error("consistency proof does not reproduce the new tree head")]
    NewRootMismatch,
}

/// Why a store-backed computation failed.
#[derive(Debug, thiserror::Error)]
pub enum TreeError<E> {
    /// The request itself is invalid (sizes, indexes).
    #[error(transparent)]
    Merkle(#[from] MerkleError),
    /// A node that must exist for the requested size is missing: the store
    /// is behind the size it was asked about, or it lost data.
    #[error("node store has no node at level {level}, index {index}")]
    MissingNode { level: u32, index: u64 },
    /// The store failed to read.
    #[error("node store read failed")]
    Store(#[source] E),
}

/// Read access to the roots of perfect aligned subtrees of one log.
///
/// `node(k, i)` is the root of leaves `[i·2^k, (i+1)·2^k)`; level 0 holds
/// the leaf hashes. `None` means the node is not (yet) complete.
pub trait NodeStore {
    /// The store's own read error.
    type Error;
    /// The node at `level`, `index`, if the store holds it.
    fn node(&self, level: u32, index: u64) -> Result<Option<Hash>, Self::Error>;
}

impl<S: NodeStore + ?Sized> NodeStore for &S {
    type Error = S::Error;
    fn node(&self, level: u32, index: u64) -> Result<Option<Hash>, Self::Error> {
        (**self).node(level, index)
    }
}

fn get<S: NodeStore>(store: &S, level: u32, index: u64) -> Result<Hash, TreeError<S::Error>> {
    store
        .node(level, index)
        .map_err(TreeError::Store)?
        .ok_or(TreeError::MissingNode { level, index })
}

/// One node of the tree: the root of leaves `[index·2^level, (index+1)·2^level)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    pub level: u32,
    pub index: u64,
    pub hash: Hash,
}

/// The nodes that become complete when leaf number `size` (0-based, so the
/// tree grows from `size` to `size + 1` leaves) with hash `leaf` is
/// appended: the leaf itself at level 0, then each parent it completes, in
/// that order. The caller persists them, in the same transaction as the
/// entry. Reads only left siblings, O(log n).
pub fn append_nodes<S: NodeStore>(
    store: &S,
    size: u64,
    leaf: Hash,
) -> Result<Vec<Node>, TreeError<S::Error>> {
    let mut nodes = vec![Node {
        level: 0,
        index: size,
        hash: leaf,
    }];
    let (mut level, mut index, mut hash) = (0u32, size, leaf);
    while index & 1 == 1 {
        let left = get(store, level, index - 1)?;
        hash = node_hash(&left, &hash);
        level += 1;
        index >>= 1;
        nodes.push(Node { level, index, hash });
    }
    Ok(nodes)
}

/// Whether `[start, end)` is a subtree that the RFC's recursion can reach
/// from some tree: non-empty, and `start` a multiple of the smallest power
/// of two not below its size.
fn is_rfc_subtree(start: u64, end: u64) -> bool {
    if end <= start {
        return false;
    }
    let n = end - start;
    match n.checked_next_power_of_two() {
        Some(p) => start % p == 0,
        // n > 2^63: only the range starting at 0 qualifies.
        None => start == 0,
    }
}

/// `MTH(D[start:end])` computed from stored nodes, for any subtree of the
/// RFC's recursion (see [`MerkleError::UnalignedRange`]). The range splits
/// into one perfect aligned node per set bit of `end - start`, largest
/// first; the head folds them from the right, exactly as the RFC's split at
/// the largest power of two below the size does. O(log n) reads.
pub fn subtree_root<S: NodeStore>(
    store: &S,
    start: u64,
    end: u64,
) -> Result<Hash, TreeError<S::Error>> {
    if !is_rfc_subtree(start, end) {
        return Err(MerkleError::UnalignedRange { start, end }.into());
    }
    let mut parts = Vec::with_capacity(64);
    let mut pos = start;
    let n = end - start;
    for level in (0..64u32).rev() {
        if n & (1u64 << level) != 0 {
            parts.push(get(store, level, pos >> level)?);
            pos += 1u64 << level;
        }
    }
    let mut acc = parts.pop().expect("a non-empty range has a set bit");
    while let Some(left) = parts.pop() {
        acc = node_hash(&left, &acc);
    }
    Ok(acc)
}

/// The tree head of the first `size` leaves ([`EMPTY_ROOT`] for 0).
pub fn root<S: NodeStore>(store: &S, size: u64) -> Result<Hash, TreeError<S::Error>> {
    if size == 0 {
        return Ok(EMPTY_ROOT);
    }
    subtree_root(store, 0, size)
}

/// The largest power of two strictly below `n` (`n ≥ 2`): the RFC's split.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// `PATH(index, D[0:size])`, RFC 9162 §2.1.3.1: the audit path of leaf
/// `index` in the tree of the first `size` leaves, nearest sibling first.
pub fn inclusion_proof<S: NodeStore>(
    store: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, TreeError<S::Error>> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size }.into());
    }
    let mut path = Vec::new();
    let (mut lo, mut hi) = (0u64, size);
    while hi - lo > 1 {
        let mid = lo + split(hi - lo);
        if index < mid {
            path.push(subtree_root(store, mid, hi)?);
            hi = mid;
        } else {
            path.push(subtree_root(store, lo, mid)?);
            lo = mid;
        }
    }
    path.reverse();
    Ok(path)
}

/// `PROOF(old_size, D[0:new_size])`, RFC 9162 §2.1.4.1: the hashes that
/// prove the tree of `old_size` leaves is a prefix of the tree of
/// `new_size` leaves. Empty when `old_size` is 0 or equals `new_size`.
pub fn consistency_proof<S: NodeStore>(
    store: &S,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, TreeError<S::Error>> {
    if old_size > new_size {
        return Err(MerkleError::SizeOutOfRange { old_size, new_size }.into());
    }
    let mut proof = Vec::new();
    if old_size == 0 || old_size == new_size {
        return Ok(proof);
    }
    // SUBPROOF(m, D[lo:hi], whole), unrolled; m counts from `lo`.
    let (mut lo, mut hi, mut m, mut whole) = (0u64, new_size, old_size, true);
    while m != hi - lo {
        let k = split(hi - lo);
        if m <= k {
            proof.push(subtree_root(store, lo + k, hi)?);
            hi = lo + k;
        } else {
            proof.push(subtree_root(store, lo, lo + k)?);
            lo += k;
            m -= k;
            whole = false;
        }
    }
    if !whole {
        proof.push(subtree_root(store, lo, hi)?);
    }
    proof.reverse();
    Ok(proof)
}

fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let (mut lo, mut hi, mut len) = (0u64, size, 0usize);
    while hi - lo > 1 {
        let mid = lo + split(hi - lo);
        if index < mid {
            hi = mid;
        } else {
            lo = mid;
        }
        len += 1;
    }
    len
}

fn consistency_proof_len(old_size: u64, new_size: u64) -> usize {
    let (mut lo, mut hi, mut m, mut whole, mut len) = (0u64, new_size, old_size, true, 0usize);
    while m != hi - lo {
        let k = split(hi - lo);
        if m <= k {
            hi = lo + k;
        } else {
            lo += k;
            m -= k;
            whole = false;
        }
        len += 1;
    }
    len + usize::from(!whole)
}

/// Checks an inclusion proof, RFC 9162 §2.1.3.2: that `leaf` is leaf number
/// `index` of the tree of `size` leaves whose head is `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(MerkleError::WrongProofLength {
            expected,
            found: proof.len(),
        });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(MerkleError::WrongProofLength {
                expected,
                found: proof.len(),
            });
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(MerkleError::WrongProofLength {
            expected,
            found: proof.len(),
        });
    }
    if r != *root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// Checks a consistency proof, RFC 9162 §2.1.4.2: that the tree of
/// `old_size` leaves with head `old_root` is a prefix of the tree of
/// `new_size` leaves with head `new_root`.
///
/// The RFC covers `0 < old_size < new_size`. The two edges are decided
/// here: equal sizes need an empty proof and equal heads; an old size of 0
/// needs an empty proof and `old_root` = [`EMPTY_ROOT`] (every tree extends
/// the empty one, so `new_root` is not constrained).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), MerkleError> {
    if old_size > new_size {
        return Err(MerkleError::SizeOutOfRange { old_size, new_size });
    }
    let expected = if old_size == 0 || old_size == new_size {
        0
    } else {
        consistency_proof_len(old_size, new_size)
    };
    let wrong_len = || MerkleError::WrongProofLength {
        expected,
        found: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_len());
    }
    if old_size == 0 {
        return if *old_root == EMPTY_ROOT {
            Ok(())
        } else {
            Err(MerkleError::OldRootMismatch)
        };
    }
    if old_size == new_size {
        return if old_root == new_root {
            Ok(())
        } else {
            Err(MerkleError::NewRootMismatch)
        };
    }

    // Step 2: a power-of-two old tree is itself a node of the new one.
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    // Steps 3–4.
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 5.
    let (mut fr, mut sr) = (path[0], path[0]);
    // Step 6.
    for c in &path[1..] {
        if snode == 0 {
            return Err(wrong_len());
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 7.
    if snode != 0 {
        return Err(wrong_len());
    }
    if fr != *old_root {
        return Err(MerkleError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(MerkleError::NewRootMismatch);
    }
    Ok(())
}

/// A whole tree in memory: for tests, and for callers that rebuild a tree
/// from leaves they received. `levels[k][i]` is node `(k, i)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree of the given leaf hashes, in order.
    pub fn from_leaves(leaves: impl IntoIterator<Item = Hash>) -> Self {
        let mut tree = Self::new();
        for leaf in leaves {
            tree.push(leaf);
        }
        tree
    }

    /// The number of leaves.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Whether the tree has no leaf.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a leaf hash; returns its index.
    pub fn push(&mut self, leaf: Hash) -> u64 {
        let index = self.len();
        let nodes = match append_nodes(&*self, index, leaf) {
            Ok(nodes) => nodes,
            Err(TreeError::Store(never)) => match never {},
            Err(e) => unreachable!("a memory tree holds every complete node: {e}"),
        };
        for node in nodes {
            let level = node.level as usize;
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(node.hash);
        }
        index
    }

    /// The tree head over all leaves.
    pub fn root(&self) -> Hash {
        match root(self, self.len()) {
            Ok(hash) => hash,
            Err(TreeError::Store(never)) => match never {},
            Err(e) => unreachable!("a memory tree holds every complete node: {e}"),
        }
    }
}

impl NodeStore for MemoryTree {
    type Error = Infallible;

    fn node(&self, level: u32, index: u64) -> Result<Option<Hash>, Infallible> {
        let found = self
            .levels
            .get(level as usize)
            .zip(usize::try_from(index).ok())
            .and_then(|(nodes, i)| nodes.get(i))
            .copied();
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(hex_str: &str) -> Hash {
        hex::decode(hex_str).unwrap().try_into().unwrap()
    }

    /// `MTH` straight from the RFC's recursive definition.
    fn naive_mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => EMPTY_ROOT,
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&naive_mth(&leaves[..k]), &naive_mth(&leaves[k..]))
            }
        }
    }

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    fn flip(hash: &Hash, byte: usize) -> Hash {
        let mut out = *hash;
        out[byte % 32] ^= 0x01;
        out
    }

    /// The Certificate Transparency reference leaves (RFC 6962 test data).
    fn reference_tree() -> MemoryTree {
        let data = [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ];
        MemoryTree::from_leaves(data.iter().map(|d| leaf_hash(&hex::decode(d).unwrap())))
    }

    #[test]
    fn reference_tree_heads() {
        let roots = [
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let tree = reference_tree();
        assert_eq!(EMPTY_ROOT, h(roots[0]));
        assert_eq!(MemoryTree::new().root(), EMPTY_ROOT);
        // A one-leaf tree's head is the leaf hash H(0x00 ‖ "").
        assert_eq!(leaf_hash(b""), h(roots[1]));
        for (size, want) in roots.iter().enumerate() {
            assert_eq!(root(&tree, size as u64).unwrap(), h(want), "size {size}");
        }
    }

    #[test]
    fn reference_proofs() {
        let tree = reference_tree();
        let incl = inclusion_proof(&tree, 0, 8).unwrap();
        let want = [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ];
        assert_eq!(incl, want.map(h));
        let cons = consistency_proof(&tree, 2, 8).unwrap();
        assert_eq!(cons, want[1..].iter().map(|s| h(s)).collect::<Vec<_>>());
        let (r2, r8) = (root(&tree, 2).unwrap(), tree.root());
        verify_consistency(2, 8, &r2, &r8, &cons).unwrap();
    }

    #[test]
    fn append_reports_each_completed_node() {
        let mut tree = MemoryTree::from_leaves(leaves(3));
        let leaf = leaf_hash(b"fourth");
        let nodes = append_nodes(&tree, 3, leaf).unwrap();
        let positions: Vec<_> = nodes.iter().map(|n| (n.level, n.index)).collect();
        assert_eq!(positions, [(0, 3), (1, 1), (2, 0)]);
        tree.push(leaf);
        assert_eq!(nodes[2].hash, tree.root());
        // Appending leaf 4 completes nothing above it.
        assert_eq!(append_nodes(&tree, 4, leaf).unwrap().len(), 1);
    }

    #[test]
    fn a_store_behind_the_size_is_reported() {
        let tree = MemoryTree::from_leaves(leaves(3));
        assert!(matches!(
            root(&tree, 4),
            Err(TreeError::MissingNode { level: 2, index: 0 })
        ));
        assert!(matches!(
            append_nodes(&tree, 5, [0; 32]),
            Err(TreeError::MissingNode { level: 0, index: 4 })
        ));
    }

    #[test]
    fn bad_requests_are_refused() {
        let tree = MemoryTree::from_leaves(leaves(8));
        assert!(matches!(
            inclusion_proof(&tree, 8, 8),
            Err(TreeError::Merkle(MerkleError::IndexOutOfRange {
                index: 8,
                size: 8
            }))
        ));
        assert!(matches!(
            consistency_proof(&tree, 5, 3),
            Err(TreeError::Merkle(MerkleError::SizeOutOfRange { .. }))
        ));
        assert!(matches!(
            subtree_root(&tree, 1, 3),
            Err(TreeError::Merkle(MerkleError::UnalignedRange {
                start: 1,
                end: 3
            }))
        ));
        assert!(matches!(
            subtree_root(&tree, 2, 2),
            Err(TreeError::Merkle(MerkleError::UnalignedRange { .. }))
        ));
        let r = tree.root();
        assert_eq!(
            verify_inclusion(&tree.levels[0][0], 8, 8, &[], &r),
            Err(MerkleError::IndexOutOfRange { index: 8, size: 8 })
        );
        assert_eq!(
            verify_consistency(8, 4, &r, &r, &[]),
            Err(MerkleError::SizeOutOfRange {
                old_size: 8,
                new_size: 4
            })
        );
        // The empty tree: only the empty head, only an empty proof.
        verify_consistency(0, 8, &EMPTY_ROOT, &r, &[]).unwrap();
        assert!(verify_consistency(0, 8, &r, &r, &[]).is_err());
        assert!(verify_consistency(0, 8, &EMPTY_ROOT, &r, &[r]).is_err());
        // Equal sizes: equal heads, empty proof.
        verify_consistency(8, 8, &r, &r, &[]).unwrap();
        assert!(verify_consistency(8, 8, &r, &r, &[r]).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn roots_match_the_rfc_definition(n in 0u64..300) {
            let leaves = leaves(n);
            let tree = MemoryTree::from_leaves(leaves.iter().copied());
            prop_assert_eq!(tree.len(), n);
            for size in 0..=n {
                prop_assert_eq!(root(&tree, size).unwrap(), naive_mth(&leaves[..size as usize]));
            }
        }

        #[test]
        fn inclusion_proofs_verify_and_nothing_else_does(
            n in 1u64..300,
            byte in 0usize..32,
            salt in 1u64..300,
        ) {
            let leaves = leaves(n);
            let tree = MemoryTree::from_leaves(leaves.iter().copied());
            let r = tree.root();
            for index in 0..n {
                let leaf = leaves[index as usize];
                let proof = inclusion_proof(&tree, index, n).unwrap();
                prop_assert_eq!(verify_inclusion(&leaf, index, n, &proof, &r), Ok(()));
                // Wrong leaf, wrong root.
                prop_assert!(verify_inclusion(&flip(&leaf, byte), index, n, &proof, &r).is_err());
                prop_assert!(verify_inclusion(&leaf, index, n, &proof, &flip(&r, byte)).is_err());
                // Wrong index: the sibling, the neighbours, one more anywhere.
                let others = [index ^ 1, index.wrapping_sub(1), index + 1, (index + salt) % n];
                for other in others.into_iter().filter(|&o| o != index && o < n) {
                    prop_assert!(verify_inclusion(&leaf, other, n, &proof, &r).is_err());
                }
                // Any altered, dropped or added proof hash.
                for i in 0..proof.len() {
                    let mut bad = proof.clone();
                    bad[i] = flip(&bad[i], byte);
                    prop_assert!(verify_inclusion(&leaf, index, n, &bad, &r).is_err());
                }
                if !proof.is_empty() {
                    let short = &proof[..proof.len() - 1];
                    prop_assert!(verify_inclusion(&leaf, index, n, short, &r).is_err());
                }
                let mut long = proof.clone();
                long.push(r);
                prop_assert!(verify_inclusion(&leaf, index, n, &long, &r).is_err());
            }
        }

        #[test]
        fn consistency_proofs_verify_and_nothing_else_does(n in 0u64..300, byte in 0usize..32) {
            let tree = MemoryTree::from_leaves(leaves(n));
            let new_root = tree.root();
            for m in 0..=n {
                let old_root = root(&tree, m).unwrap();
                let proof = consistency_proof(&tree, m, n).unwrap();
                prop_assert_eq!(verify_consistency(m, n, &old_root, &new_root, &proof), Ok(()));
                prop_assert!(
                    verify_consistency(m, n, &flip(&old_root, byte), &new_root, &proof).is_err()
                );
                // Every tree extends the empty one: only m ≥ 1 constrains the new head.
                if m > 0 {
                    prop_assert!(
                        verify_consistency(m, n, &old_root, &flip(&new_root, byte), &proof).is_err()
                    );
                }
                for i in 0..proof.len() {
                    let mut bad = proof.clone();
                    bad[i] = flip(&bad[i], byte);
                    prop_assert!(verify_consistency(m, n, &old_root, &new_root, &bad).is_err());
                }
                if !proof.is_empty() {
                    let short = &proof[..proof.len() - 1];
                    prop_assert!(verify_consistency(m, n, &old_root, &new_root, short).is_err());
                }
                let mut long = proof.clone();
                long.push(new_root);
                prop_assert!(verify_consistency(m, n, &old_root, &new_root, &long).is_err());
                // A proof for one old size proves nothing about another.
                if m >= 1 && m < n {
                    let other_root = root(&tree, m + 1).unwrap();
                    prop_assert!(verify_consistency(m + 1, n, &other_root, &new_root, &proof).is_err());
                }
            }
        }
    }
}
