//! Deterministic, realistic-looking JSON bodies for the demo platform's services.
//!
//! Every body is drawn from a [`Rng`] seeded with the request's key (its path, plus the
//! sorted query for listings), so the same request always gets the same bytes, and so the
//! same ETag. The JSON is compact with the same keys over and over, as real API JSON is.

use serde_json::{json, Value};

use super::prng::Rng;
use super::timestamp::rfc3339;

/// 2024-01-01T00:00:00Z: fake timestamps fall in the year after.
const EPOCH_2024: u64 = 1_704_067_200;
const YEAR_SECS: u64 = 365 * 86_400;

const FIRST_NAMES: &[&str] = &[
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Ava",
    "Elijah",
    "Sophia",
    "James",
    "Isabella",
    "Lucas",
    "Mia",
    "Mateo",
    "Amelia",
    "Benjamin",
    "Harper",
    "Henry",
    "Evelyn",
    "Alexander",
    "Camila",
    "Daniel",
    "Priya",
    "Wei",
    "Fatima",
    "Diego",
    "Aisha",
    "Kenji",
    "Sofia",
    "Omar",
    "Grace",
    "Marcus",
];
const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Patel",
    "Nguyen",
    "Kim",
    "Chen",
    "Okafor",
    "Silva",
    "Cohen",
    "Murphy",
    "Rossi",
];
const STREETS: &[&str] = &[
    "Maple Ave",
    "Oak St",
    "Cedar Ln",
    "Pine Ridge Dr",
    "Elm St",
    "Lakeview Blvd",
    "Sunset Dr",
    "Willow Way",
    "Highland Ave",
    "Park Pl",
    "River Rd",
    "Meadow Ln",
    "Forest Hills Dr",
    "Chestnut St",
    "Magnolia Ct",
    "Juniper Trl",
    "Harbor View Rd",
    "Aspen Cir",
];
const CITIES: &[(&str, &str, u64)] = &[
    ("Austin", "TX", 78701),
    ("Denver", "CO", 80202),
    ("Phoenix", "AZ", 85004),
    ("Nashville", "TN", 37203),
    ("Raleigh", "NC", 27601),
    ("Tampa", "FL", 33602),
    ("Boise", "ID", 83702),
    ("Charlotte", "NC", 28202),
    ("Columbus", "OH", 43215),
    ("Sacramento", "CA", 95814),
    ("Portland", "OR", 97201),
    ("Atlanta", "GA", 30303),
];
const COMPANIES: &[&str] = &[
    "Acme Logistics",
    "Brightside Dental",
    "Summit Roofing",
    "Blue Harbor Realty",
    "Northstar Fitness",
    "Evergreen Landscaping",
    "Keystone Insurance",
    "Redwood Financial",
    "Lumen Solar",
    "Cornerstone Builders",
    "Silverline Auto",
    "Harbor & Pine Law",
];
const TITLES: &[&str] = &[
    "Owner",
    "Operations Manager",
    "Marketing Director",
    "Office Manager",
    "CEO",
    "Sales Lead",
    "Homeowner",
    "First-time Buyer",
    "Investor",
    "Property Manager",
];
const SOURCES: &[&str] = &[
    "facebook_ads",
    "google_ads",
    "referral",
    "zillow",
    "website_form",
    "open_house",
    "cold_call",
    "instagram",
    "realtor_com",
    "direct_mail",
];
const STATUSES: &[&str] = &[
    "new",
    "contacted",
    "qualified",
    "nurturing",
    "appointment_set",
    "under_contract",
    "closed_won",
    "closed_lost",
];
const PIPELINE_STAGES: &[&str] = &[
    "Inbound",
    "Discovery Call",
    "Needs Analysis",
    "Showing Scheduled",
    "Offer Prep",
    "Negotiation",
    "Closing",
];
const TAGS: &[&str] = &[
    "hot",
    "pre-approved",
    "cash-buyer",
    "relocating",
    "first-home",
    "investor",
    "downsizing",
    "needs-financing",
    "vip",
    "spanish-speaking",
    "weekend-only",
    "text-preferred",
];
const ACTIVITY_TYPES: &[&str] = &["call", "email", "sms", "note", "meeting", "voicemail"];
const ACTIVITY_SUMMARIES: &[&str] = &[
    "Discussed budget range and preferred neighborhoods; lead wants a yard and a short commute.",
    "Sent listing packet with three comparable homes and a mortgage pre-approval checklist.",
    "Left voicemail about the open house this weekend; asked for a call back after 5pm.",
    "Lead replied by text confirming interest and asked about HOA fees and school ratings.",
    "Scheduled a showing for Saturday morning; partner will join by video call.",
    "Reviewed financing options; lead is comparing two lenders and expects approval soon.",
    "Follow-up email with market update: inventory is up and days on market are increasing.",
    "Lead mentioned a job relocation with a target move-in date within ninety days.",
    "Walkthrough went well; lead liked the kitchen but had concerns about the roof age.",
    "Sent a reminder about the inspection contingency deadline and the appraisal timeline.",
];
const OUTCOMES: &[&str] = &[
    "connected",
    "no_answer",
    "left_voicemail",
    "replied",
    "scheduled",
    "not_interested",
    "follow_up_needed",
    "completed",
];
const TIP_CATEGORIES: &[&str] = &[
    "follow_up",
    "objection_handling",
    "rapport",
    "timing",
    "channel",
    "pricing",
    "closing",
];
const TIP_TITLES: &[&str] = &[
    "Follow up within the hour",
    "Lead with the school district data",
    "Offer a virtual tour first",
    "Address the financing concern directly",
    "Switch to text messages",
    "Anchor on price per square foot",
    "Propose two concrete showing times",
    "Reference the last conversation",
    "Share a recent comparable sale",
    "Ask about the decision timeline",
];
const TIP_BODIES: &[&str] = &[
    "Leads contacted within an hour of an inquiry convert far more often; call now and mention the listing they viewed.",
    "This lead asked about schools twice; open with the district ratings and walking distance to the elementary school.",
    "The lead travels on weekdays, so a recorded or live virtual tour keeps momentum until an in-person visit.",
    "Pre-approval is pending; offer an introduction to a local lender who can close within thirty days.",
    "Email open rates are low for this lead but text replies are quick; keep messages short and specific.",
    "Comparable homes nearby sold for a similar price per square foot; use that to frame the asking price as fair.",
    "Instead of asking when they are free, propose Saturday at 10am or Sunday at 2pm to make saying yes easy.",
    "Mention the roof concern from the last walkthrough and share the inspection report to build trust.",
    "A similar home two streets away sold in nine days above asking; this supports acting before the weekend.",
    "Clarify whether the lease ends before or after the school year; it decides how urgent the search is.",
];
const CHANNELS: &[&str] = &["call", "sms", "email", "video"];
const PRIORITIES: &[&str] = &["high", "medium", "low"];
const PROPERTY_TYPES: &[&str] = &[
    "single_family",
    "condo",
    "townhouse",
    "multi_family",
    "manufactured",
    "land",
];
const LISTING_STATUSES: &[&str] = &["active", "pending", "coming_soon", "active_under_contract"];
const FEATURES: &[&str] = &[
    "garage",
    "pool",
    "fireplace",
    "hardwood_floors",
    "updated_kitchen",
    "central_air",
    "solar_panels",
    "fenced_yard",
    "walk_in_closet",
    "basement",
    "ev_charger",
    "patio",
    "open_floor_plan",
    "home_office",
];

fn person_name(rng: &mut Rng) -> (String, String) {
    (
        rng.pick(FIRST_NAMES).to_string(),
        rng.pick(LAST_NAMES).to_string(),
    )
}

fn phone(rng: &mut Rng) -> String {
    format!(
        "+1-{}-{}-{:04}",
        rng.range(201, 989),
        rng.range(200, 999),
        rng.range(0, 9999)
    )
}

fn email(first: &str, last: &str, rng: &mut Rng) -> String {
    let domain = rng.pick(&[
        "gmail.com",
        "outlook.com",
        "yahoo.com",
        "icloud.com",
        "proton.me",
    ]);
    format!(
        "{}.{}{}@{}",
        first.to_ascii_lowercase(),
        last.to_ascii_lowercase(),
        rng.range(1, 99),
        domain
    )
}

fn street_address(rng: &mut Rng) -> String {
    format!("{} {}", rng.range(100, 9899), rng.pick(STREETS))
}

fn score(rng: &mut Rng) -> u64 {
    rng.range(5, 99)
}

fn to_bytes(v: &Value) -> Vec<u8> {
    // Serialising a `Value` cannot fail; fall back to an empty object to stay total.
    serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec())
}

/// `GET /api/v1/leads/{id}`: a lead record with contact details, scores and 6–25 history
/// entries (about 2–8 KB).
pub fn lead_json(id: &str) -> Vec<u8> {
    let mut rng = Rng::from_key(&format!("/api/v1/leads/{id}"));
    let (first, last) = person_name(&mut rng);
    let (city, state, zip) = *rng.pick(CITIES);
    let created = EPOCH_2024 + rng.range(0, YEAR_SECS / 2);
    let (owner_first, owner_last) = person_name(&mut rng);
    let mut tags: Vec<&str> = Vec::new();
    for _ in 0..rng.range(1, 4) {
        let t = *rng.pick(TAGS);
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    let mut at = created;
    let history: Vec<Value> = (0..rng.range(6, 25))
        .map(|_| {
            at += rng.range(1_800, 3 * 86_400);
            let kind = *rng.pick(ACTIVITY_TYPES);
            let (agent_first, agent_last) = if rng.chance(0.7) {
                (owner_first.clone(), owner_last.clone())
            } else {
                person_name(&mut rng)
            };
            json!({
                "id": format!("act_{}", rng.hex(12)),
                "type": kind,
                "direction": if rng.chance(0.6) { "outbound" } else { "inbound" },
                "at": rfc3339(at),
                "agent": format!("{agent_first} {agent_last}"),
                "summary": rng.pick(ACTIVITY_SUMMARIES),
                "outcome": rng.pick(OUTCOMES),
                "duration_seconds": if kind == "call" || kind == "meeting" { rng.range(45, 2400) } else { 0 },
            })
        })
        .collect();
    let (engagement, intent, fit, responsiveness) = (
        score(&mut rng),
        score(&mut rng),
        score(&mut rng),
        score(&mut rng),
    );
    let lead = json!({
        "id": id,
        "first_name": first,
        "last_name": last,
        "full_name": format!("{first} {last}"),
        "contact": {
            "email": email(&first, &last, &mut rng),
            "phone": phone(&mut rng),
            "preferred_channel": rng.pick(CHANNELS),
            "do_not_contact": false,
            "timezone": "America/Chicago",
        },
        "company": rng.pick(COMPANIES),
        "title": rng.pick(TITLES),
        "address": {
            "street": street_address(&mut rng),
            "city": city,
            "state": state,
            "zip": format!("{:05}", zip + rng.range(0, 40)),
            "country": "US",
        },
        "source": rng.pick(SOURCES),
        "status": rng.pick(STATUSES),
        "pipeline": {
            "name": "Buyer Pipeline",
            "stage": rng.pick(PIPELINE_STAGES),
            "value_usd": rng.range(180, 1_400) * 1_000,
        },
        "owner": {
            "id": format!("usr_{}", rng.hex(8)),
            "name": format!("{owner_first} {owner_last}"),
            "email": format!("{}@example-realty.com", owner_first.to_ascii_lowercase()),
        },
        "tags": tags,
        "scores": {
            "engagement": engagement,
            "intent": intent,
            "fit": fit,
            "responsiveness": responsiveness,
            "overall": (engagement + intent + fit + responsiveness) / 4,
            "model": "lead-score-v4",
        },
        "created_at": rfc3339(created),
        "updated_at": rfc3339(at),
        "history": history,
    });
    to_bytes(&lead)
}

/// `GET /api/v1/coaching/{lead}`: 4–12 coaching tips for a lead (about 1–5 KB).
pub fn coaching_json(lead: &str) -> Vec<u8> {
    let mut rng = Rng::from_key(&format!("/api/v1/coaching/{lead}"));
    let generated = EPOCH_2024 + rng.range(0, YEAR_SECS);
    let tips: Vec<Value> = (0..rng.range(4, 12))
        .map(|i| {
            let t = rng.range(0, TIP_TITLES.len() as u64 - 1) as usize;
            json!({
                "id": format!("tip_{}", rng.hex(10)),
                "rank": i + 1,
                "category": rng.pick(TIP_CATEGORIES),
                "priority": rng.pick(PRIORITIES),
                "title": TIP_TITLES[t],
                "body": TIP_BODIES[t],
                "suggested_channel": rng.pick(CHANNELS),
                "confidence": (rng.range(55, 98) as f64) / 100.0,
                "expires_at": rfc3339(generated + rng.range(3_600, 7 * 86_400)),
            })
        })
        .collect();
    let body = json!({
        "lead_id": lead,
        "generated_at": rfc3339(generated),
        "model": "coach-v3",
        "summary": format!(
            "{} tips for this lead, based on {} recent interactions.",
            tips.len(),
            rng.range(3, 40)
        ),
        "tips": tips,
    });
    to_bytes(&body)
}

/// `GET /api/v1/properties?city=..`: 28–42 listings in the city (about 10–20 KB).
/// `key` seeds the content (the path and sorted query); `city` is shown as given.
pub fn properties_json(key: &str, city: &str) -> Vec<u8> {
    let mut rng = Rng::from_key(key);
    let state = rng.pick(CITIES).1;
    let zip_base = rng.range(10_000, 98_000);
    let listings: Vec<Value> = (0..rng.range(28, 42))
        .map(|_| {
            let beds = rng.range(1, 6);
            let sqft = 450 + beds * rng.range(280, 650);
            let price = sqft * rng.range(140, 520) / 1_000 * 1_000;
            let listed = EPOCH_2024 + rng.range(0, YEAR_SECS);
            let mut features: Vec<&str> = Vec::new();
            for _ in 0..rng.range(2, 5) {
                let f = *rng.pick(FEATURES);
                if !features.contains(&f) {
                    features.push(f);
                }
            }
            let id = rng.hex(10);
            json!({
                "id": format!("prop_{id}"),
                "mls_number": format!("MLS{}", rng.range(1_000_000, 9_999_999)),
                "address": {
                    "street": street_address(&mut rng),
                    "city": city,
                    "state": state,
                    "zip": format!("{:05}", zip_base + rng.range(0, 60)),
                },
                "price_usd": price,
                "beds": beds,
                "baths": (rng.range(2, beds * 2 + 1) as f64) / 2.0,
                "sqft": sqft,
                "year_built": rng.range(1950, 2024),
                "property_type": rng.pick(PROPERTY_TYPES),
                "status": rng.pick(LISTING_STATUSES),
                "listed_at": rfc3339(listed),
                "features": features,
                "photos": rng.range(5, 40),
                "agent": {
                    "name": format!("{} {}", rng.pick(FIRST_NAMES), rng.pick(LAST_NAMES)),
                    "phone": phone(&mut rng),
                },
            })
        })
        .collect();
    let body = json!({
        "city": city,
        "count": listings.len(),
        "currency": "USD",
        "listings": listings,
    });
    to_bytes(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<String> {
        (0..300)
            .map(|i| format!("{i}"))
            .chain(["lead-42", "abc", "7f3e9c2a-1111-4d2e-9c1a-0e4f5a6b7c8d"].map(String::from))
            .collect()
    }

    fn check_sizes(name: &str, sizes: &[usize], lo: usize, hi: usize) {
        let (min, max) = (
            sizes.iter().min().copied().unwrap_or(0),
            sizes.iter().max().copied().unwrap_or(0),
        );
        assert!(
            min >= lo && max <= hi,
            "{name}: sizes {min}..{max} outside {lo}..{hi}"
        );
    }

    #[test]
    fn bodies_are_deterministic_and_vary_by_input() {
        assert_eq!(lead_json("42"), lead_json("42"));
        assert_ne!(lead_json("42"), lead_json("43"));
        assert_eq!(coaching_json("42"), coaching_json("42"));
        assert_ne!(coaching_json("42"), coaching_json("43"));
        let k = "/api/v1/properties?city=Austin";
        assert_eq!(properties_json(k, "Austin"), properties_json(k, "Austin"));
        assert_ne!(
            properties_json(k, "Austin"),
            properties_json("/api/v1/properties?city=Denver", "Denver")
        );
    }

    #[test]
    fn bodies_are_valid_json_with_expected_fields() {
        let v: Value = serde_json::from_slice(&lead_json("9")).unwrap();
        assert_eq!(v["id"], "9");
        assert!(v["contact"]["email"].as_str().unwrap().contains('@'));
        assert!(v["history"].as_array().unwrap().len() >= 6);
        assert!(v["scores"]["overall"].is_u64());
        let v: Value = serde_json::from_slice(&coaching_json("9")).unwrap();
        assert_eq!(v["lead_id"], "9");
        assert!(v["tips"].as_array().unwrap().len() >= 4);
        let v: Value =
            serde_json::from_slice(&properties_json("/api/v1/properties?city=Boise", "Boise"))
                .unwrap();
        assert_eq!(v["city"], "Boise");
        let listings = v["listings"].as_array().unwrap();
        assert_eq!(v["count"], listings.len());
        assert!(listings.iter().all(|l| l["address"]["city"] == "Boise"));
    }

    #[test]
    fn lead_sizes_within_2_to_8_kb() {
        let sizes: Vec<usize> = keys().iter().map(|k| lead_json(k).len()).collect();
        check_sizes("leads", &sizes, 2_000, 8_000);
    }

    #[test]
    fn coaching_sizes_within_1_to_5_kb() {
        let sizes: Vec<usize> = keys().iter().map(|k| coaching_json(k).len()).collect();
        check_sizes("coaching", &sizes, 1_000, 5_000);
    }

    #[test]
    fn properties_sizes_within_10_to_20_kb() {
        let cities = [
            "Austin",
            "Denver",
            "Phoenix",
            "San Francisco",
            "Salt Lake City",
            "Boise",
            "NYC",
            "x",
        ];
        let sizes: Vec<usize> = cities
            .iter()
            .flat_map(|c| {
                (0..40).map(move |page| {
                    properties_json(&format!("/api/v1/properties?city={c}&page={page}"), c).len()
                })
            })
            .collect();
        check_sizes("properties", &sizes, 10_000, 20_000);
    }
}
