//! The welfare schemes and places the generator draws from, with the figures they are based on.
//!
//! # Schemes (figures as notified for 2024-25; amounts in rupees)
//! - **PM-KISAN**: ₹6,000 a year to farmer families in three ₹2,000 instalments, one per
//!   four-month period (Apr–Jul, Aug–Nov, Dec–Mar), released nationally on one day and credited
//!   over the following days.
//! - **MGNREGA**: wages = days worked × the state's notified daily wage (₹237 in Uttar Pradesh to
//!   ₹374 in Haryana), paid weekly or fortnightly for the weeks a household works, mostly in the
//!   lean season (January–June).
//! - **NSAP-OAP** (old-age pension): ₹200/month from the Centre plus the state's top-up, paid
//!   monthly in the first ten days; the effective amount is per state (₹1,000 in UP, ₹4,000 in
//!   Andhra Pradesh).
//! - **PMS-SC** (post-matric scholarship): one annual payment between January and March, by
//!   course: ₹7,000 to ₹25,000.
//! - **PMAY-G** (rural housing): ₹1,20,000 (₹1,30,000 in hill states) in three instalments of
//!   40 %, 50 % and 10 %, months apart.

/// How a scheme pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemeKind {
    PmKisan,
    Mgnrega,
    OldAgePension,
    Scholarship,
    Housing,
}

impl SchemeKind {
    pub const ALL: [SchemeKind; 5] = [
        SchemeKind::PmKisan,
        SchemeKind::Mgnrega,
        SchemeKind::OldAgePension,
        SchemeKind::Scholarship,
        SchemeKind::Housing,
    ];

    /// The `scheme` column value.
    pub fn code(self) -> &'static str {
        match self {
            SchemeKind::PmKisan => "PM-KISAN",
            SchemeKind::Mgnrega => "MGNREGA",
            SchemeKind::OldAgePension => "NSAP-OAP",
            SchemeKind::Scholarship => "PMS-SC",
            SchemeKind::Housing => "PMAY-G",
        }
    }

    pub fn from_code(code: &str) -> Option<SchemeKind> {
        SchemeKind::ALL.into_iter().find(|kind| kind.code() == code)
    }

    /// Share of beneficiaries enrolled.
    pub fn enrolment_probability(self) -> f64 {
        match self {
            SchemeKind::PmKisan => 0.55,
            SchemeKind::Mgnrega => 0.35,
            SchemeKind::OldAgePension => 0.20,
            SchemeKind::Scholarship => 0.08,
            SchemeKind::Housing => 0.04,
        }
    }
}

/// A state's scheme parameters.
#[derive(Debug, Clone, Copy)]
pub struct StateRates {
    pub name: &'static str,
    /// MGNREGA notified daily wage 2024-25, rupees.
    pub mgnrega_daily_wage: i64,
    /// Effective monthly old-age pension (Centre + state), rupees.
    pub monthly_pension: i64,
    pub hill_state: bool,
}

pub const STATES: &[StateRates] = &[
    StateRates {
        name: "Uttar Pradesh",
        mgnrega_daily_wage: 237,
        monthly_pension: 1000,
        hill_state: false,
    },
    StateRates {
        name: "Bihar",
        mgnrega_daily_wage: 245,
        monthly_pension: 1100,
        hill_state: false,
    },
    StateRates {
        name: "Maharashtra",
        mgnrega_daily_wage: 297,
        monthly_pension: 1500,
        hill_state: false,
    },
    StateRates {
        name: "West Bengal",
        mgnrega_daily_wage: 250,
        monthly_pension: 1000,
        hill_state: false,
    },
    StateRates {
        name: "Madhya Pradesh",
        mgnrega_daily_wage: 243,
        monthly_pension: 600,
        hill_state: false,
    },
    StateRates {
        name: "Rajasthan",
        mgnrega_daily_wage: 266,
        monthly_pension: 1150,
        hill_state: false,
    },
    StateRates {
        name: "Tamil Nadu",
        mgnrega_daily_wage: 319,
        monthly_pension: 1200,
        hill_state: false,
    },
    StateRates {
        name: "Karnataka",
        mgnrega_daily_wage: 349,
        monthly_pension: 1200,
        hill_state: false,
    },
    StateRates {
        name: "Gujarat",
        mgnrega_daily_wage: 280,
        monthly_pension: 1250,
        hill_state: false,
    },
    StateRates {
        name: "Andhra Pradesh",
        mgnrega_daily_wage: 300,
        monthly_pension: 4000,
        hill_state: false,
    },
    StateRates {
        name: "Odisha",
        mgnrega_daily_wage: 254,
        monthly_pension: 1200,
        hill_state: false,
    },
    StateRates {
        name: "Telangana",
        mgnrega_daily_wage: 300,
        monthly_pension: 2016,
        hill_state: false,
    },
    StateRates {
        name: "Kerala",
        mgnrega_daily_wage: 346,
        monthly_pension: 1600,
        hill_state: false,
    },
    StateRates {
        name: "Jharkhand",
        mgnrega_daily_wage: 245,
        monthly_pension: 1000,
        hill_state: false,
    },
    StateRates {
        name: "Assam",
        mgnrega_daily_wage: 249,
        monthly_pension: 1250,
        hill_state: true,
    },
    StateRates {
        name: "Punjab",
        mgnrega_daily_wage: 322,
        monthly_pension: 1500,
        hill_state: false,
    },
    StateRates {
        name: "Haryana",
        mgnrega_daily_wage: 374,
        monthly_pension: 3000,
        hill_state: false,
    },
    StateRates {
        name: "Chhattisgarh",
        mgnrega_daily_wage: 243,
        monthly_pension: 500,
        hill_state: false,
    },
    StateRates {
        name: "Delhi",
        mgnrega_daily_wage: 0,
        monthly_pension: 2500,
        hill_state: false,
    },
    StateRates {
        name: "Uttarakhand",
        mgnrega_daily_wage: 237,
        monthly_pension: 1500,
        hill_state: true,
    },
    StateRates {
        name: "Himachal Pradesh",
        mgnrega_daily_wage: 236,
        monthly_pension: 1700,
        hill_state: true,
    },
    StateRates {
        name: "Jammu and Kashmir",
        mgnrega_daily_wage: 259,
        monthly_pension: 1000,
        hill_state: true,
    },
];

/// A district headquarters: name, index into [`STATES`], latitude, longitude, population in
/// lakhs (Census 2011, rounded) used as the sampling weight.
#[derive(Debug, Clone, Copy)]
pub struct District {
    pub name: &'static str,
    pub state: usize,
    pub latitude: f64,
    pub longitude: f64,
    pub population_lakhs: f64,
}

const fn d(
    name: &'static str,
    state: usize,
    latitude: f64,
    longitude: f64,
    population_lakhs: f64,
) -> District {
    District {
        name,
        state,
        latitude,
        longitude,
        population_lakhs,
    }
}

pub const DISTRICTS: &[District] = &[
    d("Lucknow", 0, 26.85, 80.95, 46.0),
    d("Prayagraj", 0, 25.44, 81.85, 60.0),
    d("Gorakhpur", 0, 26.76, 83.37, 44.0),
    d("Varanasi", 0, 25.32, 82.97, 37.0),
    d("Agra", 0, 27.18, 78.01, 44.0),
    d("Bareilly", 0, 28.37, 79.43, 45.0),
    d("Patna", 1, 25.59, 85.14, 58.0),
    d("Gaya", 1, 24.80, 85.00, 44.0),
    d("Muzaffarpur", 1, 26.12, 85.39, 48.0),
    d("Purnia", 1, 25.78, 87.47, 33.0),
    d("Pune", 2, 18.52, 73.86, 94.0),
    d("Nagpur", 2, 21.15, 79.09, 46.0),
    d("Nashik", 2, 20.00, 73.79, 61.0),
    d("Aurangabad", 2, 19.88, 75.34, 37.0),
    d("Kolkata", 3, 22.57, 88.36, 45.0),
    d("Murshidabad", 3, 24.18, 88.27, 71.0),
    d("Bardhaman", 3, 23.23, 87.86, 77.0),
    d("Jalpaiguri", 3, 26.52, 88.72, 38.0),
    d("Indore", 4, 22.72, 75.86, 33.0),
    d("Bhopal", 4, 23.26, 77.41, 24.0),
    d("Jabalpur", 4, 23.18, 79.99, 25.0),
    d("Jaipur", 5, 26.91, 75.79, 66.0),
    d("Jodhpur", 5, 26.24, 73.02, 37.0),
    d("Udaipur", 5, 24.59, 73.71, 31.0),
    d("Chennai", 6, 13.08, 80.27, 46.0),
    d("Madurai", 6, 9.93, 78.12, 30.0),
    d("Coimbatore", 6, 11.02, 76.96, 35.0),
    d("Bengaluru Rural", 7, 13.28, 77.54, 10.0),
    d("Belagavi", 7, 15.85, 74.50, 48.0),
    d("Mysuru", 7, 12.30, 76.64, 30.0),
    d("Ahmedabad", 8, 23.02, 72.57, 72.0),
    d("Surat", 8, 21.17, 72.83, 61.0),
    d("Rajkot", 8, 22.30, 70.80, 38.0),
    d("Guntur", 9, 16.31, 80.44, 49.0),
    d("Visakhapatnam", 9, 17.69, 83.22, 43.0),
    d("Kurnool", 9, 15.83, 78.04, 40.0),
    d("Cuttack", 10, 20.46, 85.88, 26.0),
    d("Ganjam", 10, 19.39, 84.88, 35.0),
    d("Hyderabad", 11, 17.39, 78.49, 40.0),
    d("Warangal", 11, 17.97, 79.59, 35.0),
    d("Thiruvananthapuram", 12, 8.52, 76.94, 33.0),
    d("Malappuram", 12, 11.07, 76.07, 41.0),
    d("Ranchi", 13, 23.34, 85.31, 29.0),
    d("Dhanbad", 13, 23.80, 86.43, 27.0),
    d("Kamrup", 14, 26.14, 91.74, 15.0),
    d("Nagaon", 14, 26.35, 92.68, 28.0),
    d("Ludhiana", 15, 30.90, 75.86, 35.0),
    d("Amritsar", 15, 31.63, 74.87, 25.0),
    d("Hisar", 16, 29.15, 75.72, 17.0),
    d("Karnal", 16, 29.69, 76.99, 15.0),
    d("Raipur", 17, 21.25, 81.63, 41.0),
    d("Bilaspur", 17, 22.08, 82.14, 27.0),
    d("New Delhi", 18, 28.61, 77.21, 15.0),
    d("Dehradun", 19, 30.32, 78.03, 17.0),
    d("Shimla", 20, 31.10, 77.17, 8.0),
    d("Srinagar", 21, 34.08, 74.80, 12.0),
];

/// Places outside India used for "paid from abroad" frauds: (name, latitude, longitude).
pub const FOREIGN_PLACES: &[(&str, f64, f64)] = &[
    ("Kathmandu", 27.72, 85.32),
    ("Dhaka", 23.81, 90.41),
    ("Lahore", 31.55, 74.34),
    ("Kandy", 7.29, 80.63),
    ("Al Ain", 24.21, 55.74),
    ("Riyadh", 24.71, 46.68),
];

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_core::geo::is_in_india;

    #[test]
    fn every_district_lies_in_india_and_every_foreign_place_outside() {
        for district in DISTRICTS {
            assert!(
                is_in_india((district.latitude, district.longitude)),
                "{}",
                district.name
            );
            assert!(district.state < STATES.len());
        }
        for (name, lat, lon) in FOREIGN_PLACES {
            assert!(!is_in_india((*lat, *lon)), "{name}");
        }
    }
}
