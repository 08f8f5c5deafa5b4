package main

// copyFeatureCases are the end-to-end cases of one feature area (see e2eCases).
func copyFeatureCases() []e2eCase {
	return []e2eCase{}
}
