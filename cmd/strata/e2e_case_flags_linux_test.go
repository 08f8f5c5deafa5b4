package main

// flagCases are the end-to-end cases of one feature area (see e2eCases).
func flagCases() []e2eCase {
	return []e2eCase{}
}
