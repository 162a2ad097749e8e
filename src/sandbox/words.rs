//! Word lists the catalog generator draws from: product names, brands, categories,
//! tags, variant values and merchant names.
//!
//! Kept apart from the generator so the generation logic stays readable. Changing a
//! list changes every generated catalog, so append rather than reorder.

/// Product kinds: (noun, category as `source_category_name`, tags that fit).
pub const PRODUCTS: &[(&str, &str, &[&str])] = &[
    (
        "Backpack",
        "Bags & Luggage",
        &["travel", "outdoor", "everyday"],
    ),
    (
        "Tote Bag",
        "Bags & Luggage",
        &["everyday", "market", "gift"],
    ),
    ("Duffel", "Bags & Luggage", &["travel", "gym"]),
    ("Wallet", "Accessories", &["gift", "everyday", "slim"]),
    ("Belt", "Accessories", &["classic", "everyday"]),
    ("Scarf", "Accessories", &["winter", "gift", "soft"]),
    ("Beanie", "Accessories", &["winter", "outdoor"]),
    ("Sunglasses", "Accessories", &["summer", "outdoor", "uv400"]),
    (
        "T-Shirt",
        "Apparel > Tops",
        &["basics", "summer", "organic"],
    ),
    (
        "Hoodie",
        "Apparel > Tops",
        &["streetwear", "cozy", "winter"],
    ),
    ("Sweater", "Apparel > Tops", &["winter", "cozy", "knit"]),
    (
        "Jacket",
        "Apparel > Outerwear",
        &["outdoor", "winter", "waterproof"],
    ),
    (
        "Raincoat",
        "Apparel > Outerwear",
        &["waterproof", "outdoor"],
    ),
    ("Chinos", "Apparel > Bottoms", &["classic", "office"]),
    ("Jeans", "Apparel > Bottoms", &["denim", "everyday"]),
    ("Sneakers", "Footwear", &["running", "everyday", "vegan"]),
    ("Boots", "Footwear", &["winter", "outdoor", "leather"]),
    ("Sandals", "Footwear", &["summer", "beach"]),
    (
        "Mug",
        "Home > Kitchen",
        &["coffee", "gift", "dishwasher-safe"],
    ),
    ("Teapot", "Home > Kitchen", &["tea", "gift"]),
    ("Cutting Board", "Home > Kitchen", &["cooking", "handmade"]),
    ("Chef Knife", "Home > Kitchen", &["cooking", "professional"]),
    (
        "Water Bottle",
        "Sports & Outdoors",
        &["outdoor", "gym", "bpa-free"],
    ),
    (
        "Yoga Mat",
        "Sports & Outdoors",
        &["yoga", "fitness", "non-slip"],
    ),
    ("Throw Blanket", "Home > Decor", &["cozy", "gift", "winter"]),
    ("Candle", "Home > Decor", &["gift", "scented", "handmade"]),
    ("Vase", "Home > Decor", &["handmade", "minimal"]),
    ("Lamp", "Home > Lighting", &["minimal", "desk", "led"]),
    ("Notebook", "Stationery", &["office", "gift", "recycled"]),
    ("Fountain Pen", "Stationery", &["office", "gift", "classic"]),
    (
        "Headphones",
        "Electronics > Audio",
        &["wireless", "travel", "noise-cancelling"],
    ),
    (
        "Speaker",
        "Electronics > Audio",
        &["wireless", "outdoor", "bluetooth"],
    ),
    (
        "Phone Case",
        "Electronics > Accessories",
        &["slim", "protective"],
    ),
    (
        "Watch",
        "Jewelry & Watches",
        &["classic", "gift", "water-resistant"],
    ),
    (
        "Necklace",
        "Jewelry & Watches",
        &["gift", "handmade", "minimal"],
    ),
    (
        "Face Serum",
        "Beauty > Skincare",
        &["vegan", "cruelty-free", "hydrating"],
    ),
    ("Shampoo Bar", "Beauty > Hair", &["zero-waste", "vegan"]),
    (
        "Dog Leash",
        "Pet Supplies",
        &["dog", "outdoor", "reflective"],
    ),
    ("Plant Pot", "Garden", &["garden", "handmade", "indoor"]),
    ("Puzzle", "Toys & Games", &["family", "gift", "1000-pieces"]),
];

pub const ADJECTIVES: &[&str] = &[
    "Classic",
    "Everyday",
    "Rugged",
    "Minimal",
    "Vintage",
    "Modern",
    "Cozy",
    "Lightweight",
    "Heritage",
    "Essential",
    "Premium",
    "Urban",
    "Coastal",
    "Alpine",
    "Signature",
    "Compact",
    "Oversized",
    "Handcrafted",
    "Weekend",
    "Midnight",
    "Sunlit",
    "Bold",
    "Soft",
    "Nordic",
];

pub const MATERIALS: &[&str] = &[
    "Cotton",
    "Leather",
    "Canvas",
    "Wool",
    "Linen",
    "Denim",
    "Bamboo",
    "Ceramic",
    "Oak",
    "Walnut",
    "Steel",
    "Recycled Nylon",
    "Merino",
    "Cork",
    "Suede",
    "Glass",
    "Silk",
    "Hemp",
];

pub const VENDORS: &[&str] = &[
    "Northwind Goods",
    "Fernhill & Co",
    "Atlas Supply",
    "Juniper Row",
    "Kettle & Crane",
    "Lumen Works",
    "Tidewater",
    "Oakline",
    "Bright Harbor",
    "Stonefield",
    "Marlow Studio",
    "Pinecrest",
    "Wildmeadow",
    "Copper Kite",
    "Saltbox",
    "Ironbark",
];

pub const COLORS: &[&str] = &[
    "Black", "White", "Navy", "Olive", "Sand", "Charcoal", "Rust", "Forest", "Sky", "Burgundy",
];

pub const SIZES: &[&str] = &["XS", "S", "M", "L", "XL", "XXL"];

pub const MERCHANT_NAMES: &[&str] = &[
    "Sandbox Outfitters",
    "Maple & Thread",
    "Harbor Home Goods",
    "Trailhead Supply",
    "The Quiet Kitchen",
    "Lantern Street",
    "Bluebird Beauty",
    "Paper & Pine",
    "Summit Pets",
];

/// E-commerce platforms Violet connects to (`source` on offers, `platform` on merchants).
pub const PLATFORMS: &[&str] = &[
    "SHOPIFY",
    "SHOPIFY",
    "BIGCOMMERCE",
    "WOOCOMMERCE",
    "MAGENTO",
];

pub const CURRENCIES: &[&str] = &["USD", "USD", "USD", "CAD", "EUR", "GBP"];

pub const COLLECTION_THEMES: &[&str] = &[
    "New Arrivals",
    "Best Sellers",
    "Summer Essentials",
    "Winter Warmers",
    "Gifts Under $50",
    "Staff Picks",
    "Back to School",
    "Holiday Shop",
    "Outdoor Adventures",
    "Home Refresh",
    "Last Chance",
    "Eco Collection",
    "Travel Ready",
    "Weekend Edit",
];

pub const SELLING_POINTS: &[&str] = &[
    "Built to last for years of daily use",
    "Ethically made in small batches",
    "Free returns within 30 days",
    "Designed in-house and tested in the field",
    "Made with responsibly sourced materials",
    "Easy care: machine washable or wipe clean",
    "Backed by a two-year warranty",
    "Packaged plastic-free",
];
