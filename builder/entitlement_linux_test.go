package builder

import (
	"errors"
	"strings"
	"testing"

	"github.com/strata-build/strata/executor"
)

// TestHostNetworkNeedsEntitlement: a Dockerfile cannot put its RUN on the host's network by
// itself; the operator allows it (--allow network.host) or asks for it (--network=host).
func TestHostNetworkNeedsEntitlement(t *testing.T) {
	df := "FROM scratch\nRUN noop\nRUN --network=host noop\n"
	tb := newTestBuild(t, nil)
	_, _, err := tb.build(df)
	if !errors.Is(err, errHostNetwork) || !strings.Contains(err.Error(), "Dockerfile:3") {
		t.Errorf("without the entitlement: %v, want the network.host refusal naming line 3", err)
	}
	if n := len(tb.runner.(*fakeRunner).runs); n != 0 {
		t.Errorf("%d steps ran before the refusal", n)
	}
	tb.mustBuild(df, func(o *Options) { o.AllowHostNetwork = true })
	tb.mustBuild(df, func(o *Options) { o.Network = executor.NetworkHost })
}
