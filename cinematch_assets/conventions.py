"""MovieLens conventions that Spark code and the app share (no Spark here)."""

# The star scale: half stars from 0.5 to 5.0.
MIN_RATING, MAX_RATING = 0.5, 5.0
# "Liked": a rating this high makes a held-out movie relevant (a hit if it was on the
# list) and makes a movie a reason ("because you rated X highly"). Nothing lower is
# ever called rated highly.
LIKED_STARS = 4.0
# Below this a new user's rating counts against similar movies in the ranking fold-in
# (a preference of 0, held with confidence); from here up, for them.
DISLIKED_BELOW_STARS = 3.0
# Movies a list shows (the served lists hold more, re-ranked for discovery in the app).
SHOWN = 10

# Articles MovieLens moves to the end for sorting ("Matrix, The"), the foreign ones as
# found in the 2016 movies.csv plus their obvious companions. Case matters: "Good, the
# Bad and the Ugly, The" moves only "The".
ARTICLES = (
    "The", "A", "An",                      # English
    "Le", "La", "Les", "L'", "Un", "Une",  # French (La, L', Un also Italian / Spanish)
    "Il", "I", "Lo", "Gli", "Una", "Uno",  # Italian
    "El", "Los", "Las",                    # Spanish
    "Der", "Die", "Das", "Ein", "Eine",    # German
    "De", "Het",                           # Dutch
    "Den", "Det", "En",                    # Scandinavian
)  # fmt: skip
