// Package builder walks the stage graph from package dockerfile and turns it into an image:
// it resolves bases (registry, scratch, the local store), looks up the cache per step, runs RUN
// steps through package executor, applies COPY/ADD in the image's merged view, writes layers
// through package layer, and assembles config, manifest and index for the outputs.
//
// It is written in a later issue ([4 of 5]); until then the CLI only parses and prints the graph.
package builder
