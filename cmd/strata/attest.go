package main

import (
	"context"
	"fmt"

	"github.com/strata-build/strata/builder"
)

// attestations are the attestation manifests of results, as asked.
func (o *buildOptions) attestations(ctx context.Context, all []builder.Options, results []*builder.Result) ([]builder.Attached, error) {
	if !o.attest.any() {
		return nil, nil
	}
	return nil, fmt.Errorf("attestations: not wired yet")
}
