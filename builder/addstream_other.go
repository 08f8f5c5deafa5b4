//go:build !linux

package builder

import (
	"context"

	"github.com/strata-build/strata/layer"
)

// addStream: COPY and ADD need Linux; copy reports it.
func (b *build) addStream(context.Context, *state, *copyPlan) (*layer.Layer, bool, error) {
	return nil, false, nil
}
