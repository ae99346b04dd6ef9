//! Area of interest: a uniform grid (spatial hash) over a rectangular field, so a game's
//! `snapshot_for` can find what is near a subscriber without scanning every entity.
//! Deterministic: results come sorted by key, and no hash map is involved.

/// Largest number of cells a grid allocates; a finer cell size is coarsened to fit.
pub const MAX_CELLS: usize = 65_536;

/// A uniform grid of `(key, x, y)` points over `[0, width] x [0, height]`.
///
/// Rebuild it each tick (`clear`, then `insert` every entity): `clear` keeps the
/// allocations, so a warm grid does not allocate.
///
/// ```
/// use pylon_shard::aoi::Grid;
///
/// let mut grid = Grid::new(1000.0, 1000.0, 100.0);
/// grid.insert(1_u32, 10.0, 10.0);
/// grid.insert(2, 500.0, 500.0);
/// let mut near = Vec::new();
/// grid.query_radius(0.0, 0.0, 50.0, &mut near);
/// assert_eq!(near, vec![1]);
/// ```
#[derive(Debug, Clone)]
pub struct Grid<K> {
    cell_size: f32,
    cols: usize,
    rows: usize,
    cells: Vec<Vec<(K, f32, f32)>>,
    len: usize,
}

impl<K: Copy + Ord> Grid<K> {
    /// A grid over `width x height` with square cells of `cell_size` (at least 1 unit; grown
    /// as needed so that there are at most [`MAX_CELLS`] cells).
    #[must_use]
    pub fn new(width: f32, height: f32, cell_size: f32) -> Self {
        let sane = |v: f32| if v.is_finite() && v > 1.0 { v } else { 1.0 };
        let (width, height) = (sane(width), sane(height));
        let mut cell_size = sane(cell_size);
        let count =
            |c: f32| ((width / c).ceil() as usize).max(1) * ((height / c).ceil() as usize).max(1);
        while count(cell_size) > MAX_CELLS {
            cell_size *= 2.0;
        }
        let cols = ((width / cell_size).ceil() as usize).max(1);
        let rows = ((height / cell_size).ceil() as usize).max(1);
        Self { cell_size, cols, rows, cells: vec![Vec::new(); cols * rows], len: 0 }
    }

    /// Removes every point, keeping the allocations.
    pub fn clear(&mut self) {
        for cell in &mut self.cells {
            cell.clear();
        }
        self.len = 0;
    }

    /// Adds a point. Positions outside the field go to the nearest border cell (their real
    /// coordinates are kept for distance checks); NaN counts as 0.
    pub fn insert(&mut self, key: K, x: f32, y: f32) {
        let (x, y) = (finite(x), finite(y));
        let index = self.col(x) + self.row(y) * self.cols;
        self.cells[index].push((key, x, y));
        self.len += 1;
    }

    /// Appends the keys of points within `radius` (inclusive) of `(x, y)` to `out`, sorted
    /// and without duplicates.
    pub fn query_radius(&self, x: f32, y: f32, radius: f32, out: &mut Vec<K>) {
        let (x, y, r) = (finite(x), finite(y), finite(radius).max(0.0));
        let r2 = r * r;
        let start = out.len();
        self.visit(x - r, y - r, x + r, y + r, |key, px, py| {
            let (dx, dy) = (px - x, py - y);
            if dx * dx + dy * dy <= r2 {
                out.push(key);
            }
        });
        sort_dedup_tail(out, start);
    }

    /// Appends the keys of points inside the rectangle (inclusive) to `out`, sorted and
    /// without duplicates.
    pub fn query_rect(&self, min_x: f32, min_y: f32, max_x: f32, max_y: f32, out: &mut Vec<K>) {
        let (min_x, min_y, max_x, max_y) =
            (finite(min_x), finite(min_y), finite(max_x), finite(max_y));
        let start = out.len();
        self.visit(min_x, min_y, max_x, max_y, |key, px, py| {
            if (min_x..=max_x).contains(&px) && (min_y..=max_y).contains(&py) {
                out.push(key);
            }
        });
        sort_dedup_tail(out, start);
    }

    /// Points inserted since the last `clear`.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no point is stored.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn col(&self, x: f32) -> usize {
        ((x / self.cell_size).floor().max(0.0) as usize).min(self.cols - 1)
    }

    fn row(&self, y: f32) -> usize {
        ((y / self.cell_size).floor().max(0.0) as usize).min(self.rows - 1)
    }

    fn visit(
        &self,
        min_x: f32,
        min_y: f32,
        max_x: f32,
        max_y: f32,
        mut f: impl FnMut(K, f32, f32),
    ) {
        if min_x > max_x || min_y > max_y {
            return;
        }
        for row in self.row(min_y)..=self.row(max_y) {
            for col in self.col(min_x)..=self.col(max_x) {
                for &(key, px, py) in &self.cells[col + row * self.cols] {
                    f(key, px, py);
                }
            }
        }
    }
}

fn finite(v: f32) -> f32 {
    if v.is_nan() { 0.0 } else { v }
}

fn sort_dedup_tail<K: Ord>(out: &mut Vec<K>, start: usize) {
    out[start..].sort_unstable();
    let mut tail = out.split_off(start);
    tail.dedup();
    out.append(&mut tail);
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Lcg(u64);

    impl Lcg {
        fn unit(&mut self) -> f32 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 40) as f32 / (1u64 << 24) as f32
        }
    }

    /// Radius and rectangle queries match a brute-force scan on 1,000 random points, also
    /// after clearing and refilling.
    #[test]
    fn matches_brute_force() {
        let mut rng = Lcg(5);
        let points: Vec<(u32, f32, f32)> = (0..1_000)
            .map(|i| (i, rng.unit() * 1_200.0 - 100.0, rng.unit() * 1_200.0 - 100.0))
            .collect();
        let mut grid = Grid::new(1_000.0, 1_000.0, 64.0);
        for round in 0..2 {
            grid.clear();
            for &(k, x, y) in &points {
                grid.insert(k, x, y);
            }
            assert_eq!(grid.len(), 1_000, "round {round}");
            for _ in 0..200 {
                let (x, y, r) = (rng.unit() * 1_000.0, rng.unit() * 1_000.0, rng.unit() * 300.0);
                let mut got = Vec::new();
                grid.query_radius(x, y, r, &mut got);
                let want: Vec<u32> = points
                    .iter()
                    .filter(|(_, px, py)| (px - x) * (px - x) + (py - y) * (py - y) <= r * r)
                    .map(|p| p.0)
                    .collect();
                assert_eq!(got, want);
                let mut got = Vec::new();
                grid.query_rect(x - r, y - r, x + r, y + r, &mut got);
                let want: Vec<u32> = points
                    .iter()
                    .filter(|(_, px, py)| {
                        (x - r..=x + r).contains(px) && (y - r..=y + r).contains(py)
                    })
                    .map(|p| p.0)
                    .collect();
                assert_eq!(got, want);
            }
        }
    }

    /// Border points, outside points, NaN, zero and huge radii never panic and answer right.
    #[test]
    fn edge_cases() {
        let mut grid = Grid::new(100.0, 100.0, 10.0);
        grid.insert(1_u8, 100.0, 100.0);
        grid.insert(2, -50.0, 500.0);
        grid.insert(3, f32::NAN, f32::NAN);
        let mut out = Vec::new();
        grid.query_radius(100.0, 100.0, 0.0, &mut out);
        assert_eq!(out, vec![1]);
        out.clear();
        grid.query_radius(0.0, 0.0, f32::INFINITY, &mut out);
        assert_eq!(out, vec![1, 2, 3]);
        out.clear();
        grid.query_radius(f32::NAN, 0.0, 1.0, &mut out);
        assert_eq!(out, vec![3], "NaN counts as 0");
        let tiny = Grid::<u8>::new(1e9, 1e9, 0.001);
        assert!(tiny.cols * tiny.rows <= MAX_CELLS);
    }
}
