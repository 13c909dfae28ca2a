//! Bounding-box intersection on WGS84, antimeridian-aware.
//!
//! A box with `west > east` crosses the antimeridian; it is split into two
//! parts inside [-180, 180] (`[west, 180]` and `[-180, east]`). Two boxes
//! intersect when a part of one intersects a part of the other. Edges are
//! inclusive, so boxes that touch intersect, and longitude 180 is the same
//! meridian as -180.
//!
//! The index stores each record's parts in four aligned multi-valued fast
//! columns (part i of a record is value i of each column: tantivy keeps
//! numeric values of a document in insertion order), so the exact check
//! keeps the correlation between a box's latitude and longitude.

use crate::proto::BoundingBox;

/// A box part that does not cross the antimeridian: `west <= east`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rect {
    pub west: f64,
    pub south: f64,
    pub east: f64,
    pub north: f64,
}

impl Rect {
    /// The parts of a box; none when the box is not a valid WGS84 box.
    pub fn parts_of(bbox: &BoundingBox) -> Vec<Rect> {
        let BoundingBox {
            west,
            south,
            east,
            north,
        } = *bbox;
        let lon = |v: f64| (-180.0..=180.0).contains(&v);
        let lat = |v: f64| (-90.0..=90.0).contains(&v);
        if !(lon(west) && lon(east) && lat(south) && lat(north)) || south > north {
            return Vec::new();
        }
        let rect = |west, east| Rect {
            west,
            south,
            east,
            north,
        };
        if west <= east {
            vec![rect(west, east)]
        } else {
            vec![rect(west, 180.0), rect(-180.0, east)]
        }
    }

    /// Whether the two parts share at least one point.
    pub fn intersects(&self, other: &Rect) -> bool {
        let latitude = self.south <= other.north && other.south <= self.north;
        let longitude = (self.west <= other.east && other.west <= self.east)
            || (self.east == 180.0 && other.west == -180.0)
            || (other.east == 180.0 && self.west == -180.0);
        latitude && longitude
    }
}

/// Whether any part of `a` intersects any part of `b`.
#[cfg(test)]
pub(crate) fn boxes_intersect(a: &BoundingBox, b: &BoundingBox) -> bool {
    let b = Rect::parts_of(b);
    Rect::parts_of(a)
        .iter()
        .any(|pa| b.iter().any(|pb| pa.intersects(pb)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bbox(west: f64, south: f64, east: f64, north: f64) -> BoundingBox {
        BoundingBox {
            west,
            south,
            east,
            north,
        }
    }

    #[test]
    fn crossing_boxes_split_at_the_antimeridian() {
        let parts = Rect::parts_of(&bbox(160.0, 60.0, -120.0, 90.0));
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].west, parts[0].east), (160.0, 180.0));
        assert_eq!((parts[1].west, parts[1].east), (-180.0, -120.0));
        assert!(Rect::parts_of(&bbox(0.0, 10.0, 1.0, 5.0)).is_empty());
        assert!(Rect::parts_of(&bbox(f64::NAN, 0.0, 1.0, 5.0)).is_empty());
    }

    #[test]
    fn touching_counts_including_across_the_antimeridian() {
        let square = bbox(10.0, 10.0, 20.0, 20.0);
        assert!(boxes_intersect(&square, &bbox(20.0, 20.0, 30.0, 30.0)));
        assert!(!boxes_intersect(&square, &bbox(20.5, 20.0, 30.0, 30.0)));
        let east_edge = bbox(170.0, 0.0, 180.0, 10.0);
        assert!(boxes_intersect(
            &east_edge,
            &bbox(-180.0, 0.0, -170.0, 10.0)
        ));
        assert!(!boxes_intersect(
            &east_edge,
            &bbox(-179.0, 0.0, -170.0, 10.0)
        ));
        // A box crossing the antimeridian against one on either side.
        let crossing = bbox(170.0, -10.0, -170.0, 10.0);
        assert!(boxes_intersect(&crossing, &bbox(-175.0, 0.0, -160.0, 5.0)));
        assert!(boxes_intersect(&crossing, &bbox(160.0, 0.0, 175.0, 5.0)));
        assert!(!boxes_intersect(&crossing, &bbox(-160.0, 0.0, 160.0, 5.0)));
        assert!(boxes_intersect(&crossing, &bbox(175.0, 0.0, -175.0, 5.0)));
    }

    /// Reference: longitudes as closed arcs on a circle, no splitting.
    fn reference(a: &BoundingBox, b: &BoundingBox) -> bool {
        let length = |w: f64, e: f64| if w <= e { e - w } else { e - w + 360.0 };
        let contains = |w: f64, e: f64, x: f64| (x - w).rem_euclid(360.0) <= length(w, e);
        let longitude = contains(a.west, a.east, b.west) || contains(b.west, b.east, a.west);
        let latitude = a.south <= b.north && b.south <= a.north;
        longitude && latitude
    }

    fn any_box() -> impl Strategy<Value = BoundingBox> {
        // Coarse integer degrees so that shared edges are frequent.
        (-18i32..=18, -9i32..=9, -18i32..=18, 0i32..=9).prop_map(|(w, s, e, h)| {
            let south = f64::from(s * 10);
            bbox(
                f64::from(w * 10),
                south,
                f64::from(e * 10),
                (south + f64::from(h * 10)).min(90.0),
            )
        })
    }

    proptest! {
        #[test]
        fn agrees_with_arcs_on_a_circle(a in any_box(), b in any_box()) {
            prop_assert_eq!(boxes_intersect(&a, &b), reference(&a, &b), "{:?} {:?}", a, b);
            prop_assert_eq!(boxes_intersect(&a, &b), boxes_intersect(&b, &a));
        }
    }
}
