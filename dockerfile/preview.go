package dockerfile

import (
	"maps"
	"slices"
)

// preview expands every kept stage with what the Dockerfile alone knows,
// which also reports expansion errors at Parse time, as BuildKit does for
// the stages it dispatches.
func (p *parsing) preview() error {
	ends := map[int]State{}
	lints := map[int]*stageLint{}
	for _, s := range p.g.Stages {
		var base State
		var baseLint *stageLint
		switch s.Base.Kind {
		case SourceScratch:
			base, s.Exact = ImageStateFor(s.TargetPlatform().OS, nil, nil), true
		case SourceStage:
			base, s.Exact = ends[s.Base.Stage], p.all[s.Base.Stage].Exact
			baseLint = lints[s.Base.Stage]
		default:
			// The image's ENV is unknown until it is pulled: keep the
			// variables it might define as written.
			base = State{keepUnset: true}
		}
		lints[s.Index] = p.newStageLint(s, baseLint)
		x, err := s.expand(base, lints[s.Index])
		if err != nil {
			return err
		}
		s.Steps, s.end = x.Steps, x.End
		ends[s.Index] = x.End
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
