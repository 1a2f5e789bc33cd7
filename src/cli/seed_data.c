/* The demo catalog of `agora seed`: classification tables and a deterministic product generator. */
#include <stdio.h>
#include <string.h>

#include "cli/seed.h"
#include "core/banned.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- classifications ---- */

static const struct seed_taxon VAT_RATES[] = {
    {"Standard rate 20 %", NULL, NULL, -1, 2000},
    {"Intermediate rate 10 %", NULL, NULL, -1, 1000},
    {"Reduced rate 5.5 %", NULL, NULL, -1, 550},
};
enum { VAT_STANDARD, VAT_INTERMEDIATE, VAT_REDUCED };

static const struct seed_taxon BRANDS[] = {
    {"Nordwind", "nordwind", "Outdoor clothing from the North Sea coast.", -1, 0},
    {"Atelier Lune", "atelier-lune", "A Lyon workshop for shirts and soft tailoring.", -1, 0},
    {"Brightforge", "brightforge", "Sturdy tools and kitchenware, forged in Sheffield.", -1, 0},
    {"Copperfield", "copperfield", "Lamps and lighting with warm metal finishes.", -1, 0},
    {"Helios Audio", "helios-audio", "Headphones and speakers tuned in Copenhagen.", -1, 0},
    {"Kestrel", "kestrel", "Running and cycling gear for every season.", -1, 0},
    {"Maison Verte", "maison-verte", "Plants and garden goods from Provence.", -1, 0},
    {"Oakridge", "oakridge", "Boots and leather goods built to be resoled.", -1, 0},
    {"Pioneer Labs", "pioneer-labs", "Desk accessories for people who type all day.", -1, 0},
    {"Solstice", "solstice", "Home textiles woven from natural fibres.", -1, 0},
    {"Tidewater", "tidewater", "Casual wear for weekends by the water.", -1, 0},
    {"Vireo Press", "vireo-press", "An independent publisher of novels and cookbooks.", -1, 0},
};

static const struct seed_taxon TYPES[] = {
    {"Apparel", "apparel", "Clothing and footwear, sold by size.", -1, 0},
    {"Electronics", "electronics", "Devices with a warranty and a power supply.", -1, 0},
    {"Home goods", "home-goods", "Things for the kitchen, the table and the living room.", -1, 0},
    {"Leisure", "leisure", "Sports equipment, books and the garden.", -1, 0},
};
enum { TYPE_APPAREL, TYPE_ELECTRONICS, TYPE_HOME, TYPE_LEISURE };

static const struct seed_taxon CATALOGS[] = {
    {"Main store", "main-store", "Everything we sell.", -1, 0},
    {"Outlet", "outlet", "Last pieces and end-of-season prices.", -1, 0},
};

/* A two-level tree: the roots first, each child after its parent. */
static const struct seed_taxon CATEGORIES[] = {
    {"Clothing", "clothing", "Shirts, trousers and jackets.", -1, 0},                      /* 0 */
    {"Shirts", "shirts", "Oxford, linen, flannel and denim shirts.", 0, 0},                /* 1 */
    {"Trousers", "trousers", "Chinos, jeans and joggers.", 0, 0},                          /* 2 */
    {"Jackets", "jackets", "Rain jackets, down jackets and fleeces.", 0, 0},               /* 3 */
    {"Shoes", "shoes", "Sneakers and boots.", -1, 0},                                      /* 4 */
    {"Sneakers", "sneakers", "Low tops, high tops and court shoes.", 4, 0},                /* 5 */
    {"Boots", "boots", "Chelsea boots, hiking boots and work boots.", 4, 0},               /* 6 */
    {"Electronics", "electronics", "Audio and computer accessories.", -1, 0},              /* 7 */
    {"Audio", "audio", "Headphones, earbuds and speakers.", 7, 0},                         /* 8 */
    {"Computer accessories", "computer-accessories", "Keyboards, mice and hubs.", 7, 0},   /* 9 */
    {"Home", "home", "Kitchen, lighting and textiles.", -1, 0},                            /* 10 */
    {"Kitchen", "kitchen", "Knives, pans and coffee makers.", 10, 0},                      /* 11 */
    {"Lighting", "lighting", "Desk lamps, floor lamps and pendants.", 10, 0},              /* 12 */
    {"Textiles", "textiles", "Blankets, cushions and towels.", 10, 0},                     /* 13 */
    {"Sports", "sports", "Running and cycling.", -1, 0},                                   /* 14 */
    {"Running", "running", "Vests, belts and bottles for the road and the trail.", 14, 0}, /* 15 */
    {"Cycling", "cycling", "Lights, helmets and gloves.", 14, 0},                          /* 16 */
    {"Books", "books", "Novels and cookbooks.", -1, 0},                                    /* 17 */
    {"Novels", "novels", "Fiction in paperback and hardcover.", 17, 0},                    /* 18 */
    {"Cookbooks", "cookbooks", "Recipes from near and far.", 17, 0},                       /* 19 */
    {"Garden", "garden", "Plants and garden tools.", -1, 0},                               /* 20 */
    {"Plants", "plants", "Indoor and outdoor plants.", 20, 0},                             /* 21 */
    {"Garden tools", "garden-tools", "Shears, trowels and watering cans.", 20, 0},         /* 22 */
};

static const struct seed_resource RESOURCES[SEED_KIND_COUNT] = {
    [SEED_VAT_RATE] = {"/api/v1/vat-rates", "VAT rates", VAT_RATES, COUNT(VAT_RATES)},
    [SEED_BRAND] = {"/api/v1/brands", "brands", BRANDS, COUNT(BRANDS)},
    [SEED_TYPE] = {"/api/v1/types", "types", TYPES, COUNT(TYPES)},
    [SEED_CATALOG] = {"/api/v1/catalogs", "catalogs", CATALOGS, COUNT(CATALOGS)},
    [SEED_CATEGORY] = {"/api/v1/categories", "categories", CATEGORIES, COUNT(CATEGORIES)},
};

_Static_assert(COUNT(CATEGORIES) <= SEED_TAXA_MAX && COUNT(BRANDS) <= SEED_TAXA_MAX,
               "struct seed_ids has room for every object");

const struct seed_resource *seed_resource(enum seed_kind kind)
{
    return &RESOURCES[kind];
}

/* ---- product lines: what each leaf category sells ---- */

struct product_line {
    int category; /* index in CATEGORIES */
    int type;
    int vat;
    int64_t price_min, price_max; /* euro cents */
    const char *nouns[5];
    const char *features[2]; /* a sentence each */
    const char *attribute;   /* a second attribute besides color; NULL: none */
    const char *values[5];
    int brands[3]; /* indexes in BRANDS that make this line */
    bool colored;  /* has a color attribute */
};

static const struct product_line LINES[] = {
    {1,
     TYPE_APPAREL,
     VAT_STANDARD,
     2900,
     8900,
     {"Oxford Shirt", "Linen Shirt", "Flannel Shirt", "Denim Shirt", "Polo Shirt"},
     {"Cut from breathable cotton with a relaxed fit.",
      "Mother-of-pearl buttons and a soft collar."},
     "size",
     {"XS", "S", "M", "L", "XL"},
     {1, 10, 0},
     true},
    {2,
     TYPE_APPAREL,
     VAT_STANDARD,
     3900,
     11900,
     {"Chinos", "Straight Jeans", "Slim Jeans", "Joggers", "Cargo Trousers"},
     {"A mid rise with a tapered leg.", "Garment-dyed for a lived-in look from day one."},
     "size",
     {"28", "30", "32", "34", "36"},
     {10, 1, 0},
     true},
    {3,
     TYPE_APPAREL,
     VAT_STANDARD,
     7900,
     29900,
     {"Rain Jacket", "Down Jacket", "Fleece Jacket", "Field Jacket", "Bomber Jacket"},
     {"Taped seams keep the rain out.", "Packs into its own pocket."},
     "size",
     {"XS", "S", "M", "L", "XL"},
     {0, 5, 10},
     true},
    {5,
     TYPE_APPAREL,
     VAT_STANDARD,
     5900,
     15900,
     {"Court Sneaker", "Canvas Low Top", "High Top", "Trail Sneaker", "Leather Sneaker"},
     {"A cushioned insole for long days on your feet.", "Vulcanised rubber soles."},
     "size",
     {"EU 38", "EU 40", "EU 42", "EU 44", "EU 46"},
     {5, 10, 7},
     true},
    {6,
     TYPE_APPAREL,
     VAT_STANDARD,
     11900,
     32900,
     {"Chelsea Boot", "Hiking Boot", "Work Boot", "Desert Boot", "Winter Boot"},
     {"Goodyear-welted, so it can be resoled.", "Waterproof full-grain leather."},
     "size",
     {"EU 38", "EU 40", "EU 42", "EU 44", "EU 46"},
     {7, 0, 7},
     true},
    {8,
     TYPE_ELECTRONICS,
     VAT_STANDARD,
     2900,
     39900,
     {"Over-Ear Headphones", "Wireless Earbuds", "Bluetooth Speaker", "Bookshelf Speaker",
      "Turntable"},
     {"Forty hours of battery life.", "Tuned for a warm, detailed sound."},
     "connectivity",
     {"Bluetooth 5.3", "Wired", "Wi-Fi", "Bluetooth and wired", "USB-C"},
     {4, 4, 8},
     true},
    {9,
     TYPE_ELECTRONICS,
     VAT_STANDARD,
     1900,
     18900,
     {"Mechanical Keyboard", "Wireless Mouse", "USB-C Hub", "Monitor Stand", "Desk Mat"},
     {"Works with Linux, macOS and Windows.", "A two-year warranty and a replaceable cable."},
     "connectivity",
     {"USB-C", "Bluetooth", "2.4 GHz receiver", "Wired", "USB-A"},
     {8, 8, 4},
     true},
    {11,
     TYPE_HOME,
     VAT_STANDARD,
     1500,
     17900,
     {"Chef's Knife", "Cast-Iron Skillet", "French Press", "Cutting Board", "Dutch Oven"},
     {"Dishwasher safe, though it will last longer washed by hand.",
      "Balanced for precise everyday work."},
     "material",
     {"stainless steel", "cast iron", "oak", "enamelled steel", "walnut"},
     {2, 2, 9},
     false},
    {12,
     TYPE_HOME,
     VAT_STANDARD,
     3900,
     24900,
     {"Desk Lamp", "Floor Lamp", "Pendant Light", "Wall Sconce", "Table Lamp"},
     {"A dimmable LED module rated for 25,000 hours.", "A fabric cable and a brass switch."},
     "finish",
     {"brass", "matte black", "brushed steel", "copper", "white"},
     {3, 3, 8},
     false},
    {13,
     TYPE_HOME,
     VAT_STANDARD,
     1900,
     12900,
     {"Throw Blanket", "Cushion Cover", "Bath Towel", "Linen Duvet Cover", "Table Runner"},
     {"Woven from organic cotton.", "Pre-washed for softness."},
     "material",
     {"organic cotton", "linen", "wool", "cotton and linen", "alpaca"},
     {9, 9, 1},
     true},
    {15,
     TYPE_LEISURE,
     VAT_STANDARD,
     1200,
     8900,
     {"Running Vest", "Hydration Belt", "Insulated Bottle", "Running Cap", "Reflective Armband"},
     {"Weighs less than 200 grams.", "Reflective details for early mornings."},
     "capacity",
     {"350 ml", "500 ml", "750 ml", "1 l", "one size"},
     {5, 5, 0},
     true},
    {16,
     TYPE_LEISURE,
     VAT_STANDARD,
     1900,
     14900,
     {"Bike Light Set", "Cycling Helmet", "Cycling Gloves", "Saddle Bag", "Mini Pump"},
     {"Tested to the EN 1078 standard.", "Mounts without tools in seconds."},
     "size",
     {"S", "M", "L", "one size", "XL"},
     {5, 5, 8},
     true},
    {18,
     TYPE_LEISURE,
     VAT_REDUCED,
     900,
     2900,
     {"The Quiet Harbour", "Salt and Iron", "A Winter in Lisbon", "The Cartographer's Daughter",
      "Letters from the Valley"},
     {"A novel about leaving home and finding it again.", "Shortlisted for a first-novel prize."},
     "format",
     {"paperback", "hardcover", "large print", "paperback", "hardcover"},
     {11, 11, 11},
     false},
    {19,
     TYPE_LEISURE,
     VAT_REDUCED,
     1900,
     4500,
     {"Everyday Bread", "The Vegetable Table", "Spice Roads", "One Pan Dinners", "Coastal Kitchen"},
     {"More than a hundred recipes, each with a photograph.", "Written by a chef and a farmer."},
     "format",
     {"hardcover", "paperback", "spiral bound", "hardcover", "paperback"},
     {11, 11, 11},
     false},
    {21,
     TYPE_LEISURE,
     VAT_INTERMEDIATE,
     900,
     14900,
     {"Olive Tree", "Monstera", "Lavender", "Fiddle Leaf Fig", "Rosemary"},
     {"Grown without peat in Provence.", "Delivered in a recycled pot with care instructions."},
     "height",
     {"20 cm", "40 cm", "60 cm", "90 cm", "120 cm"},
     {6, 6, 6},
     false},
    {22,
     TYPE_LEISURE,
     VAT_STANDARD,
     1200,
     6900,
     {"Pruning Shears", "Hand Trowel", "Watering Can", "Garden Fork", "Kneeling Pad"},
     {"Ash handles from sustainable forests.", "Replacement parts available for ten years."},
     "material",
     {"carbon steel", "stainless steel", "galvanised steel", "ash", "recycled plastic"},
     {6, 2, 6},
     false},
};

static const char *const ADJECTIVES[] = {
    "Classic", "Essential", "Heritage", "Urban",   "Alpine", "Coastal", "Everyday",
    "Premium", "Compact",   "Vintage",  "Modern",  "Field",  "Studio",  "Trail",
    "Organic", "Light",     "Nordic",   "Weekend", "Atlas",  "Meadow",
};

static const char *const COLORS[] = {
    "navy",  "charcoal",     "olive", "sand",  "burgundy", "ivory",
    "slate", "forest green", "rust",  "black", "white",    "sky blue",
};

static const char *const CLOSINGS[] = {
    "Designed to last for years of everyday use.",
    "Made in small batches by a family workshop.",
    "Backed by a two-year warranty.",
    "Ships in plastic-free packaging.",
    "A customer favourite since its launch.",
    "Tested by our team before it joins the range.",
    "Free returns within thirty days.",
};

/* ---- the generator ---- */

/* splitmix64: a small, well-mixed PRNG; its whole state is one integer. */
static uint64_t prng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t prng_below(uint64_t *state, uint64_t n)
{
    return prng_next(state) % n;
}

/* A retail price between min and max cents, ending in .90 or .99. */
static int64_t price_cents(uint64_t *rng, const struct product_line *line)
{
    int64_t span = line->price_max - line->price_min;
    int64_t raw = line->price_min + (int64_t)prng_below(rng, (uint64_t)span + 1);
    return raw / 100 * 100 + (prng_below(rng, 2) ? 99 : 90);
}

/* A sentence starting with a lowercase copy of word (for "a linen shirt"). */
static void lower_copy(const char *in, char *out, size_t size)
{
    size_t i = 0;
    for (; in[i] && i + 1 < size; i++)
        out[i] = in[i] >= 'A' && in[i] <= 'Z' ? (char)(in[i] - 'A' + 'a') : in[i];
    out[i] = '\0';
}

json_t *seed_product_json(uint64_t index, const struct seed_ids *ids)
{
    /* Seeded by the index alone: product i is the same in every run and for every N. */
    uint64_t rng = index * 0x2545f4914f6cdd1dULL + 0x5eed;
    const struct product_line *line = &LINES[prng_below(&rng, COUNT(LINES))];
    const char *noun = line->nouns[prng_below(&rng, COUNT(line->nouns))];
    int brand = line->brands[prng_below(&rng, COUNT(line->brands))];
    bool books = line->type == TYPE_LEISURE && line->vat == VAT_REDUCED;
    const char *adjective = ADJECTIVES[prng_below(&rng, COUNT(ADJECTIVES))];
    const char *color = COLORS[prng_below(&rng, COUNT(COLORS))];
    size_t value = prng_below(&rng, COUNT(line->values));
    char sku[32], name[200], description[1000], noun_lower[64];

    snprintf(sku, sizeof(sku), "DEMO-%06llu", (unsigned long long)(index + 1));
    lower_copy(noun, noun_lower, sizeof(noun_lower));
    if (books) {
        /* A title is a name already; the edition tells copies apart. */
        snprintf(name, sizeof(name), "%s (%s edition)", noun, adjective);
        snprintf(description, sizeof(description), "%s, published by %s in %s. %s %s", noun,
                 BRANDS[brand].name, line->values[value], line->features[prng_below(&rng, 2)],
                 CLOSINGS[prng_below(&rng, COUNT(CLOSINGS))]);
    } else {
        snprintf(name, sizeof(name), "%s %s %s", BRANDS[brand].name, adjective, noun);
        snprintf(description, sizeof(description), "The %s %s from %s%s%s. %s %s %s", adjective,
                 noun_lower, BRANDS[brand].name, line->colored ? ", in " : "",
                 line->colored ? color : "", line->features[0], line->features[1],
                 CLOSINGS[prng_below(&rng, COUNT(CLOSINGS))]);
    }

    /* Stock: about 8 % sold out, 12 % low (at or under the threshold of 5), the rest plenty. */
    uint64_t roll = prng_below(&rng, 100);
    int64_t on_hand = roll < 8    ? 0
                      : roll < 20 ? 1 + (int64_t)prng_below(&rng, 5)
                                  : 6 + (int64_t)prng_below(&rng, 195);
    bool outlet = prng_below(&rng, 5) == 0;

    json_t *attributes = json_object();
    json_t *categories = json_array();
    json_t *catalogs = json_array();
    json_t *product = json_pack(
        "{s:s, s:s, s:s, s:{s:I, s:s}, s:s, s:s, s:s, s:o, s:o, s:o, s:I, s:I}", "sku", sku, "name",
        name, "description", description, "price", "amount", (json_int_t)price_cents(&rng, line),
        "currency", "EUR", "vat_rate_id", ids->id[SEED_VAT_RATE][line->vat], "brand_id",
        ids->id[SEED_BRAND][brand], "type_id", ids->id[SEED_TYPE][line->type], "category_ids",
        json_incref(categories), "catalog_ids", json_incref(catalogs), "attributes",
        json_incref(attributes), "on_hand", (json_int_t)on_hand, "low_threshold", (json_int_t)5);
    int bad = !product || !attributes || !categories || !catalogs;
    if (!bad) {
        if (line->colored)
            bad |= json_object_set_new(attributes, "color", json_string(color));
        if (line->attribute)
            bad |=
                json_object_set_new(attributes, line->attribute, json_string(line->values[value]));
        bad |=
            json_array_append_new(categories, json_string(ids->id[SEED_CATEGORY][line->category]));
        bad |= json_array_append_new(catalogs, json_string(ids->id[SEED_CATALOG][0]));
        if (outlet)
            bad |= json_array_append_new(catalogs, json_string(ids->id[SEED_CATALOG][1]));
    }
    json_decref(attributes);
    json_decref(categories);
    json_decref(catalogs);
    if (bad) {
        json_decref(product);
        return NULL;
    }
    return product;
}
