package main

// secretCases are the end-to-end cases of one feature area (see e2eCases).
func secretCases() []e2eCase {
	return []e2eCase{}
}
