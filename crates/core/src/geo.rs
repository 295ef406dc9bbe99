//! Geography: great-circle distance and a coarse outline of India.

/// Great-circle distance in kilometres between two (latitude, longitude) points.
pub fn haversine_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    const EARTH_RADIUS_KM: f64 = 6371.0;
    let (lat1, lon1) = (a.0.to_radians(), a.1.to_radians());
    let (lat2, lon2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2)
        + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().asin()
}

/// A coarse outline of mainland India (latitude, longitude), clockwise from Kashmir. Good to a few
/// tens of kilometres: enough to tell a payment in Lahore, Kathmandu, Dhaka or the sea from one
/// in India, which is all the generator and the checks need.
const INDIA_OUTLINE: &[(f64, f64)] = &[
    (35.5, 74.0),
    (36.9, 75.5),
    (35.6, 77.8),
    (34.3, 78.9),
    (32.6, 79.4),
    (31.0, 79.0),
    (30.2, 80.9),
    (28.8, 80.1),
    (28.0, 82.0),
    (27.3, 84.1),
    (26.4, 86.5),
    (26.4, 88.1),
    (27.2, 88.1),
    (28.1, 88.8),
    (27.4, 90.0),
    (26.8, 92.0),
    (27.9, 91.7),
    (28.2, 94.0),
    (29.3, 95.5),
    (28.3, 97.3),
    (27.1, 96.1),
    (25.6, 94.6),
    (24.0, 94.2),
    (23.4, 93.3),
    (22.0, 92.6),
    (24.2, 92.2),
    (24.9, 92.2),
    (25.2, 90.0),
    (25.3, 89.8),
    (24.3, 88.7),
    (22.9, 88.9),
    (21.6, 89.0),
    (21.5, 87.0),
    (20.2, 86.5),
    (19.0, 84.7),
    (16.5, 82.3),
    (15.5, 80.3),
    (13.2, 80.3),
    (11.0, 79.8),
    (10.1, 79.3),
    (8.9, 78.2),
    (8.1, 77.5),
    (8.5, 76.9),
    (10.5, 75.9),
    (12.8, 74.8),
    (15.5, 73.8),
    (18.9, 72.8),
    (20.7, 72.9),
    (21.6, 72.6),
    (22.3, 72.3),
    (21.0, 70.6),
    (21.7, 69.1),
    (22.9, 68.4),
    (23.8, 68.6),
    (24.3, 70.2),
    (24.6, 71.1),
    (25.7, 70.3),
    (27.1, 70.0),
    (28.0, 70.8),
    (29.4, 73.3),
    (30.3, 73.9),
    (31.2, 74.6),
    (32.5, 74.7),
    (33.9, 73.9),
];

/// Whether a point lies inside the coarse outline of mainland India.
pub fn is_in_india(point: (f64, f64)) -> bool {
    let (lat, lon) = point;
    let mut inside = false;
    let mut previous = INDIA_OUTLINE[INDIA_OUTLINE.len() - 1];
    for &vertex in INDIA_OUTLINE {
        let ((lat_a, lon_a), (lat_b, lon_b)) = (vertex, previous);
        if (lat_a > lat) != (lat_b > lat) {
            let crossing_lon = lon_a + (lat - lat_a) * (lon_b - lon_a) / (lat_b - lat_a);
            if lon < crossing_lon {
                inside = !inside;
            }
        }
        previous = vertex;
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delhi_to_mumbai_is_about_1150_km() {
        let km = haversine_km((28.61, 77.21), (19.08, 72.88));
        assert!((1100.0..1200.0).contains(&km), "{km}");
    }

    #[test]
    fn outline_separates_india_from_neighbours_and_sea() {
        for city in [
            (28.61, 77.21),
            (19.08, 72.88),
            (13.08, 80.27),
            (22.57, 88.36),
            (26.14, 91.74),
            (8.52, 76.94),
            (34.08, 74.80),
        ] {
            assert!(is_in_india(city), "{city:?} is in India");
        }
        for elsewhere in [
            (31.55, 74.34),
            (27.72, 85.32),
            (23.81, 90.41),
            (15.0, 65.0),
            (15.0, 88.0),
            (6.93, 79.86),
        ] {
            assert!(!is_in_india(elsewhere), "{elsewhere:?} is not in India");
        }
    }
}
