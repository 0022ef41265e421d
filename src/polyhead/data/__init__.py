"""Reading labelled data sets, texts to encode, and the small demo corpora."""
