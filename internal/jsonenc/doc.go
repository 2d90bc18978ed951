// Package jsonenc appends JSON values byte for byte as encoding/json's
// Marshal writes them, for the few records rustypipe writes once per task
// (key preimages, action records), where Marshal's reflection was a
// measurable part of a cold build.
//
// Its contract is equality with encoding/json: String escapes exactly as
// Marshal does with its default HTML escaping, and the tests compare the
// two on every byte value and on random strings. Callers that hand-encode
// a struct test their encoder against json.Marshal of that struct.
package jsonenc
