module gopkg.in/Knetic/govaluate.v3
