"""tinylm's own English stop-word list (A2: "remove stop words").

Stop words are the short function words (articles, pronouns, auxiliaries, prepositions,
conjunctions) that make up a large share of running text but say little about its topic.
Removing them helps bag-of-words models (classification, topic counts) and hurts models of
word order (a language model must predict "the" too), so ``clean(..., stopwords=True)`` is
off by default and chapter 04 shows what it removes.

The list is written for this project (no list was copied): lower-case, with the contracted
forms written with a plain apostrophe (``clean`` maps the typographic one to it first).
"""

_WORDS = """
a an the
i me my mine myself we us our ours ourselves you your yours yourself yourselves
he him his himself she her hers herself it its itself they them their theirs themselves
this that these those who whom whose which what
am is are was were be been being have has had having do does did doing
will would shall should can could may might must ought
and but or nor so yet if then else than because as while until unless although though
of at by for with about against between into through during before after above below
to from up down in out on off over under again further once
here there when where why how all any both each few more most other some such only own
same too very just also not no
s t d ll m re ve
don't doesn't didn't isn't aren't wasn't weren't hasn't haven't hadn't won't wouldn't
shan't shouldn't can't cannot couldn't mustn't mightn't needn't
i'm you're he's she's it's we're they're i've you've we've they've i'd you'd he'd she'd
we'd they'd i'll you'll he'll she'll we'll they'll that's there's what's who's let's
"""

STOPWORDS = frozenset(_WORDS.split())
