//! The values every comparison stores and reads: a ~1 KiB struct and a 100-byte string.

use serde::{Deserialize, Serialize};

/// One meal of a day, as the example service stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meal {
    /// What was eaten.
    pub name: String,
    /// Energy, kilocalories.
    pub kcal: u32,
    /// Protein, grams.
    pub protein_g: f32,
    /// Carbohydrates, grams.
    pub carbs_g: f32,
    /// Fat, grams.
    pub fat_g: f32,
    /// When, Unix milliseconds.
    pub eaten_at: i64,
}

/// A user's meals of one day: the ~1 KiB value (1,013 bytes in bincode 2 standard, 1,032 with the envelope).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DailyMeals {
    /// Whose.
    pub user_id: i64,
    /// Which day, `YYYY-MM-DD`.
    pub day: String,
    /// The meals, in order.
    pub meals: Vec<Meal>,
    /// Sum of the meals' energy.
    pub total_kcal: u32,
    /// A free-text note.
    pub note: Option<String>,
}

/// The ~1 KiB value.
#[must_use]
pub fn daily_meals() -> DailyMeals {
    let meals: Vec<Meal> = (0..15_u16)
        .map(|i| Meal {
            name: format!("meal {i:02}: oats, yoghurt, berries and h{}", "o".repeat(3)),
            kcal: 300 + u32::from(i) * 7,
            protein_g: 12.5 + f32::from(i),
            carbs_g: 40.25,
            fat_g: 9.75,
            eaten_at: 1_714_550_400_000 + i64::from(i) * 3_600_000,
        })
        .collect();
    DailyMeals {
        user_id: 42,
        day: "2024-05-01".to_owned(),
        total_kcal: meals.iter().map(|m| m.kcal).sum(),
        meals,
        note: Some("a note about the day".to_owned()),
    }
}

/// The 100-byte value: a string of 100 ASCII bytes.
#[must_use]
pub fn small() -> String {
    "0123456789".repeat(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_what_the_names_say() {
        let config = bincode::config::standard();
        let meals = bincode::serde::encode_to_vec(daily_meals(), config).unwrap_or_default();
        // The report and run.sh's redis-benchmark -d use these sizes (plus the 19-byte envelope).
        assert_eq!(meals.len(), 1013);
        let small = bincode::serde::encode_to_vec(small(), config).unwrap_or_default();
        assert_eq!(small.len(), 101);
    }
}
