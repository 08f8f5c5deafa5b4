package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/strata-build/strata/dockerfile"
)

// TestKeyIsMarshalDigest pins the cache key to the SHA-256 of
// json.Marshal's encoding, which key streams into the hash: a change of
// the bytes would miss every cache entry written before.
func TestKeyIsMarshalDigest(t *testing.T) {
	for _, in := range []keyInput{
		{},
		{
			Parent:   "scratch linux/amd64",
			Platform: "linux/amd64",
			Kind:     "*instructions.EnvCommand",
			Command:  &instructions.EnvCommand{Env: instructions.KeyValuePairs{{Key: "A", Value: "<&>\u2028é"}}},
			Env:      []string{"PATH=/bin", "A=<&>\u2028é"},
			Args:     []dockerfile.Arg{{Key: "X", Value: "1", HasValue: true}},
			Content:  "sum",
			Layer:    "gzip",
			Network:  "none",
		},
		{Env: []string{}, Args: []dockerfile.Arg{}},
	} {
		got, err := in.key()
		if err != nil {
			t.Fatal(err)
		}
		in.Version = cacheVersion
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if want := hex.EncodeToString(sum[:]); got != want {
			t.Errorf("key of %s = %s, want %s", b, got, want)
		}
	}
}
