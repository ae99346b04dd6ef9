//! Area of interest: a uniform grid (spatial hash) over a rectangular world, so a game's
//! `snapshot_for` can find what is near a subscriber without scanning every entity.
//!
//! Deterministic: no hash map is involved and query results come sorted by key. Rebuild
//! the grid every tick (`clear`, then `insert` each entity); a warm grid does not allocate.

/// Most cells a [`Grid`] allocates; a finer cell size is coarsened until the grid fits.
pub const MAX_CELLS: usize = 65_536;

/// Smallest cell size a [`Grid`] accepts; smaller, zero, negative or NaN sizes become this.
pub const MIN_CELL_SIZE: f32 = 0.01;

/// End of a cell's chain of points.
const NONE: usize = usize::MAX;

/// A uniform grid of `(key, x, y)` points over a rectangular world.
///
/// Points are kept in one `Vec` and threaded into per-cell chains, so the grid owns exactly
/// two allocations, and [`clear`](Grid::clear) keeps both. Points outside the world are
/// stored in the nearest border cell with their real coordinates, so every query is exact
/// wherever the points are: the grid only decides which points get looked at.
///
/// Coordinates (of points and of query centres) that are NaN are read as the world's
/// minimum corner, which is in cell 0; infinities are clamped to `±f32::MAX`. Distances
/// are computed in `f64`.
///
/// ```
/// use pylon_shard::aoi::Grid;
///
/// let mut grid = Grid::new(1_000.0, 1_000.0, 100.0);
/// grid.insert(7_u32, 10.0, 10.0);
/// grid.insert(3, 40.0, 0.0);
/// grid.insert(9, 500.0, 500.0);
/// let mut near = Vec::new();
/// grid.query_radius(0.0, 0.0, 50.0, &mut near);
/// assert_eq!(near, [3, 7]);
///
/// near.clear();
/// grid.query_rect(400.0, 400.0, 600.0, 600.0, &mut near);
/// assert_eq!(near, [9]);
///
/// grid.clear(); // keeps the allocations for the next tick
/// assert!(grid.is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct Grid<K: Copy + Ord> {
    min_x: f64,
    min_y: f64,
    cell_size: f32,
    inv_cell: f64,
    cols: usize,
    rows: usize,
    /// Index into `points` of the last point inserted in each cell, or [`NONE`].
    heads: Vec<usize>,
    points: Vec<Point<K>>,
}

#[derive(Debug, Clone, Copy)]
struct Point<K> {
    key: K,
    x: f32,
    y: f32,
    /// The previous point inserted in the same cell, or [`NONE`].
    next: usize,
}

impl<K: Copy + Ord> Grid<K> {
    /// A grid over `[0, width] x [0, height]` with square cells of `cell_size`.
    ///
    /// `cell_size` is raised to at least [`MIN_CELL_SIZE`], and grown (to about the
    /// smallest size that fits) when the world would need more than [`MAX_CELLS`] cells;
    /// [`cell_size`](Grid::cell_size) reports the size in use. A NaN or negative width or
    /// height counts as 0 and an infinite one as `f32::MAX`.
    #[must_use]
    pub fn new(width: f32, height: f32, cell_size: f32) -> Self {
        Self::with_bounds(0.0, 0.0, width, height, cell_size)
    }

    /// Like [`new`](Grid::new), for the world `[min_x, min_x + width] x [min_y, min_y + height]`.
    #[must_use]
    pub fn with_bounds(min_x: f32, min_y: f32, width: f32, height: f32, cell_size: f32) -> Self {
        let extent = |v: f32| if v.is_nan() || v < 0.0 { 0.0 } else { v.min(f32::MAX) };
        let (width, height) = (extent(width), extent(height));
        let mut cell = if cell_size.is_nan() {
            MIN_CELL_SIZE
        } else {
            cell_size.clamp(MIN_CELL_SIZE, f32::MAX)
        };
        let span =
            |len: f32, cell: f32| ((f64::from(len) / f64::from(cell)).ceil() as usize).max(1);
        let cells = |cell: f32| span(width, cell).saturating_mul(span(height, cell));
        if cells(cell) > MAX_CELLS {
            // Jump to the lower bound of the fitting sizes, then grow by 1% until it fits.
            let area = f64::from(width) * f64::from(height) / MAX_CELLS as f64;
            let lower = area.sqrt().max(f64::from(width.max(height)) / MAX_CELLS as f64);
            cell = cell.max(lower as f32);
            for _ in 0..10_000 {
                if cells(cell) <= MAX_CELLS || cell >= f32::MAX {
                    break;
                }
                cell = (cell * 1.01).min(f32::MAX);
            }
        }
        // Never more than MAX_CELLS, even if the loop gave up: border cells absorb the rest.
        let cols = span(width, cell).min(MAX_CELLS);
        let rows = span(height, cell).min(MAX_CELLS / cols);
        Self {
            min_x: f64::from(coordinate(min_x, 0.0)),
            min_y: f64::from(coordinate(min_y, 0.0)),
            cell_size: cell,
            inv_cell: 1.0 / f64::from(cell),
            cols,
            rows,
            heads: vec![NONE; cols * rows],
            points: Vec::new(),
        }
    }

    /// The cell size in use, after clamping and growing (see [`new`](Grid::new)).
    #[must_use]
    pub fn cell_size(&self) -> f32 {
        self.cell_size
    }

    /// Removes every point, keeping the allocations.
    pub fn clear(&mut self) {
        self.points.clear();
        self.heads.fill(NONE);
    }

    /// Adds a point. A key may be inserted more than once; queries report it once.
    ///
    /// Positions outside the world go to the nearest border cell (their coordinates are
    /// kept for distance checks); a NaN coordinate is read as the world's minimum corner.
    pub fn insert(&mut self, key: K, x: f32, y: f32) {
        let x = coordinate(x, self.min_x as f32);
        let y = coordinate(y, self.min_y as f32);
        let cell = self.col(f64::from(x)) + self.row(f64::from(y)) * self.cols;
        let index = self.points.len();
        if let Some(head) = self.heads.get_mut(cell) {
            self.points.push(Point { key, x, y, next: *head });
            *head = index;
        }
    }

    /// Appends to `out` the keys of the points within `radius` (inclusive) of `(x, y)`,
    /// sorted and without duplicates. Entries already in `out` are left alone.
    ///
    /// A NaN or negative radius matches nothing; an infinite one matches every point.
    pub fn query_radius(&self, x: f32, y: f32, radius: f32, out: &mut Vec<K>) {
        if radius.is_nan() || radius < 0.0 {
            return;
        }
        let cx = f64::from(coordinate(x, self.min_x as f32));
        let cy = f64::from(coordinate(y, self.min_y as f32));
        let r = f64::from(radius);
        let (min_x, max_x, min_y, max_y) = (cx - r, cx + r, cy - r, cy + r);
        let r2 = r * r;
        let start = out.len();
        self.visit(min_x, min_y, max_x, max_y, |p| {
            let (px, py) = (f64::from(p.x), f64::from(p.y));
            // The box test keeps rounding from accepting a point outside the visited cells.
            let in_box = (min_x..=max_x).contains(&px) && (min_y..=max_y).contains(&py);
            let (dx, dy) = (px - cx, py - cy);
            if in_box && dx * dx + dy * dy <= r2 {
                out.push(p.key);
            }
        });
        sort_dedup_tail(out, start);
    }

    /// Appends to `out` the keys of the points inside the rectangle (bounds inclusive),
    /// sorted and without duplicates. Entries already in `out` are left alone.
    ///
    /// An empty rectangle (`min > max`) or a NaN bound matches nothing; infinite bounds are
    /// fine.
    pub fn query_rect(&self, min_x: f32, min_y: f32, max_x: f32, max_y: f32, out: &mut Vec<K>) {
        let (min_x, min_y, max_x, max_y) =
            (f64::from(min_x), f64::from(min_y), f64::from(max_x), f64::from(max_y));
        // Comparisons with NaN are false, so NaN bounds make the rectangle empty too.
        let non_empty = min_x <= max_x && min_y <= max_y;
        if !non_empty {
            return;
        }
        let start = out.len();
        self.visit(min_x, min_y, max_x, max_y, |p| {
            let (px, py) = (f64::from(p.x), f64::from(p.y));
            if (min_x..=max_x).contains(&px) && (min_y..=max_y).contains(&py) {
                out.push(p.key);
            }
        });
        sort_dedup_tail(out, start);
    }

    /// The number of points inserted since the last [`clear`](Grid::clear).
    #[must_use]
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the grid holds no point.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    fn col(&self, x: f64) -> usize {
        cell_index((x - self.min_x) * self.inv_cell, self.cols)
    }

    fn row(&self, y: f64) -> usize {
        cell_index((y - self.min_y) * self.inv_cell, self.rows)
    }

    /// Calls `f` on every point of every cell the rectangle touches. Cell indexes are a
    /// monotonic function of the coordinate, so a point inside the rectangle is always in
    /// one of those cells.
    fn visit(&self, min_x: f64, min_y: f64, max_x: f64, max_y: f64, mut f: impl FnMut(&Point<K>)) {
        let (first_col, last_col) = (self.col(min_x), self.col(max_x));
        for row in self.row(min_y)..=self.row(max_y) {
            let cells = row * self.cols + first_col..=row * self.cols + last_col;
            for &head in self.heads.get(cells).unwrap_or_default() {
                let mut index = head;
                while let Some(p) = self.points.get(index) {
                    f(p);
                    index = p.next;
                }
            }
        }
    }
}

/// A finite coordinate: NaN becomes `nan_as`, infinities are clamped to `±f32::MAX`.
fn coordinate(v: f32, nan_as: f32) -> f32 {
    if v.is_nan() { nan_as } else { v.clamp(-f32::MAX, f32::MAX) }
}

/// `floor(scaled)` clamped to `0..count` (NaN and negatives go to 0).
fn cell_index(scaled: f64, count: usize) -> usize {
    let floor = scaled.floor();
    if floor > 0.0 { (floor as usize).min(count.saturating_sub(1)) } else { 0 }
}

/// Sorts `out[start..]` and removes its duplicates, in place.
fn sort_dedup_tail<K: Copy + Ord>(out: &mut Vec<K>, start: usize) {
    let Some(tail) = out.get_mut(start..) else {
        return;
    };
    tail.sort_unstable();
    let mut kept = 0;
    for read in 0..tail.len() {
        if kept == 0 || tail[read] != tail[kept - 1] {
            tail[kept] = tail[read];
            kept += 1;
        }
    }
    out.truncate(start + kept);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny deterministic xorshift64 generator.
    struct XorShift(u64);

    impl XorShift {
        /// A uniform value in `[lo, hi)`.
        fn range(&mut self, lo: f32, hi: f32) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            let unit = (self.0 >> 40) as f32 / (1_u64 << 24) as f32;
            lo + (hi - lo) * unit
        }
    }

    fn brute_radius(points: &[(u32, f32, f32)], x: f32, y: f32, r: f32) -> Vec<u32> {
        let r2 = f64::from(r) * f64::from(r);
        let mut keys: Vec<u32> = points
            .iter()
            .filter(|&&(_, px, py)| {
                let (dx, dy) = (f64::from(px) - f64::from(x), f64::from(py) - f64::from(y));
                dx * dx + dy * dy <= r2
            })
            .map(|p| p.0)
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    fn brute_rect(points: &[(u32, f32, f32)], x0: f32, y0: f32, x1: f32, y1: f32) -> Vec<u32> {
        let mut keys: Vec<u32> = points
            .iter()
            .filter(|&&(_, px, py)| x0 <= px && px <= x1 && y0 <= py && py <= y1)
            .map(|p| p.0)
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    fn radius(grid: &Grid<u32>, x: f32, y: f32, r: f32) -> Vec<u32> {
        let mut out = Vec::new();
        grid.query_radius(x, y, r, &mut out);
        out
    }

    fn rect(grid: &Grid<u32>, x0: f32, y0: f32, x1: f32, y1: f32) -> Vec<u32> {
        let mut out = Vec::new();
        grid.query_rect(x0, y0, x1, y1, &mut out);
        out
    }

    /// 1,000 random points, partly outside the world, with some keys repeated.
    fn random_points(rng: &mut XorShift) -> Vec<(u32, f32, f32)> {
        (0..1_000_u32)
            .map(|i| (i % 900, rng.range(-100.0, 1_100.0), rng.range(-100.0, 1_100.0)))
            .collect()
    }

    /// Radius and rectangle queries agree with a brute-force scan on 1,000 random points and
    /// 200 random queries, on grids of several cell sizes and origins.
    #[test]
    fn matches_brute_force() {
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        let points = random_points(&mut rng);
        let grids = [
            Grid::new(1_000.0, 1_000.0, 64.0),
            Grid::new(1_000.0, 1_000.0, 7.0),
            Grid::new(1_000.0, 1_000.0, 5_000.0),
            Grid::with_bounds(-50.0, 200.0, 600.0, 300.0, 33.0),
        ];
        for mut grid in grids {
            for &(k, x, y) in &points {
                grid.insert(k, x, y);
            }
            assert_eq!(grid.len(), 1_000);
            for _ in 0..200 {
                let (x, y) = (rng.range(-150.0, 1_150.0), rng.range(-150.0, 1_150.0));
                let r = rng.range(0.0, 300.0);
                assert_eq!(
                    radius(&grid, x, y, r),
                    brute_radius(&points, x, y, r),
                    "radius {x} {y} {r}"
                );
                let (x1, y1) = (x + rng.range(-20.0, 400.0), y + rng.range(-20.0, 400.0));
                assert_eq!(
                    rect(&grid, x, y, x1, y1),
                    brute_rect(&points, x, y, x1, y1),
                    "rect {x} {y} {x1} {y1}"
                );
            }
        }
    }

    /// After `clear`, refilling the grid gives the same answers and reuses the allocations.
    #[test]
    fn clear_then_reuse() {
        let mut rng = XorShift(99);
        let points = random_points(&mut rng);
        let mut grid = Grid::new(1_000.0, 1_000.0, 50.0);
        let queries: Vec<(f32, f32, f32)> = (0..200)
            .map(|_| (rng.range(0.0, 1_000.0), rng.range(0.0, 1_000.0), rng.range(0.0, 250.0)))
            .collect();
        let mut answers = Vec::new();
        for round in 0..3 {
            grid.clear();
            assert!(grid.is_empty());
            // Insertion order must not matter either.
            let order: Vec<_> =
                if round == 1 { points.iter().rev().collect() } else { points.iter().collect() };
            for &&(k, x, y) in &order {
                grid.insert(k, x, y);
            }
            let capacity = grid.points.capacity();
            let got: Vec<Vec<u32>> =
                queries.iter().map(|&(x, y, r)| radius(&grid, x, y, r)).collect();
            if round == 0 {
                answers = got;
            } else {
                assert_eq!(got, answers, "round {round}");
                assert_eq!(grid.points.capacity(), capacity, "no reallocation");
            }
        }
    }

    /// Points on the border and outside the world, NaN and infinite coordinates, and zero,
    /// huge, negative and NaN radii never panic and answer exactly.
    #[test]
    fn edge_cases() {
        let mut grid = Grid::new(100.0, 100.0, 10.0);
        grid.insert(1_u32, 100.0, 100.0);
        grid.insert(2, 0.0, 0.0);
        grid.insert(3, -50.0, 500.0);
        grid.insert(4, f32::NAN, f32::NAN);
        grid.insert(5, f32::INFINITY, 50.0);
        grid.insert(6, 100.0, 0.0);
        assert_eq!(grid.len(), 6);
        assert_eq!(radius(&grid, 100.0, 100.0, 0.0), [1], "zero radius: exact position only");
        assert_eq!(radius(&grid, 0.0, 0.0, 0.0), [2, 4], "NaN is read as the minimum corner");
        assert_eq!(radius(&grid, f32::NAN, f32::NAN, 1.0), [2, 4]);
        assert_eq!(radius(&grid, -50.0, 500.0, 1.0), [3], "outside the world");
        assert_eq!(radius(&grid, 50.0, 50.0, f32::INFINITY), [1, 2, 3, 4, 5, 6]);
        assert_eq!(radius(&grid, 50.0, 50.0, f32::MAX), [1, 2, 3, 4, 5, 6]);
        assert_eq!(radius(&grid, 50.0, 50.0, 1e6), [1, 2, 3, 4, 6]);
        assert_eq!(radius(&grid, f32::MAX, 50.0, 0.0), [5], "infinity is clamped to f32::MAX");
        assert_eq!(radius(&grid, 50.0, 50.0, -1.0), [0; 0]);
        assert_eq!(radius(&grid, 50.0, 50.0, f32::NAN), [0; 0]);
        assert_eq!(rect(&grid, 0.0, 0.0, 100.0, 100.0), [1, 2, 4, 6], "bounds are inclusive");
        assert_eq!(rect(&grid, 100.0, 0.0, 100.0, 0.0), [6]);
        assert_eq!(
            rect(&grid, f32::NEG_INFINITY, f32::NEG_INFINITY, f32::INFINITY, f32::INFINITY),
            [1, 2, 3, 4, 5, 6]
        );
        assert_eq!(rect(&grid, 10.0, 0.0, 0.0, 100.0), [0; 0], "min > max");
        assert_eq!(rect(&grid, f32::NAN, 0.0, 100.0, 100.0), [0; 0]);
        let mut out = vec![99, 0];
        grid.query_radius(100.0, 100.0, 0.0, &mut out);
        assert_eq!(out, [99, 0, 1], "earlier entries are kept as they are");
    }

    /// Duplicate keys are reported once.
    #[test]
    fn duplicate_keys_reported_once() {
        let mut grid = Grid::new(100.0, 100.0, 10.0);
        for (x, y) in [(5.0, 5.0), (6.0, 5.0), (55.0, 5.0)] {
            grid.insert(7_u32, x, y);
        }
        grid.insert(1, 6.0, 6.0);
        assert_eq!(radius(&grid, 5.0, 5.0, 100.0), [1, 7]);
        assert_eq!(rect(&grid, 0.0, 0.0, 100.0, 100.0), [1, 7]);
    }

    /// Degenerate sizes are sanitised, and a fine cell size on a big world is coarsened to
    /// at most `MAX_CELLS` cells without being coarser than needed.
    #[test]
    fn construction_is_sane() {
        let big = Grid::<u32>::new(1e9, 1e9, 0.001);
        assert!(big.cols * big.rows <= MAX_CELLS && big.heads.len() == big.cols * big.rows);
        assert!(big.cols * big.rows > MAX_CELLS / 2, "{} x {}", big.cols, big.rows);
        assert!(big.cell_size() >= 1e9 / 256.0);
        let long = Grid::<u32>::new(1e7, 1.0, 1.0);
        assert!(long.cols * long.rows <= MAX_CELLS && long.cols > MAX_CELLS / 2);
        for (w, h, c) in [
            (0.0, 0.0, 0.0),
            (-5.0, f32::NAN, -1.0),
            (f32::INFINITY, f32::INFINITY, f32::NAN),
            (f32::MAX, 1.0, f32::INFINITY),
            (100.0, 100.0, f32::MIN_POSITIVE),
        ] {
            let mut grid = Grid::new(w, h, c);
            assert!(grid.cell_size() >= MIN_CELL_SIZE && grid.cols * grid.rows <= MAX_CELLS);
            grid.insert(1_u32, 3.0, 4.0);
            grid.insert(2, -1e30, 1e30);
            assert_eq!(radius(&grid, 0.0, 0.0, 5.0), [1], "{w} {h} {c}");
            assert_eq!(radius(&grid, 0.0, 0.0, f32::INFINITY), [1, 2], "{w} {h} {c}");
        }
        let exact = Grid::<u32>::new(1_000.0, 500.0, 100.0);
        assert_eq!((exact.cols, exact.rows, exact.cell_size()), (10, 5, 100.0));
    }
}
