package main

// frontendCases are the end-to-end cases of one feature area (see e2eCases).
func frontendCases() []e2eCase {
	return []e2eCase{}
}
