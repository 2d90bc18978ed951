// Package binread reads the uvarint-framed binary files rustypipe keeps:
// the workspace state and no-op record (package build), the stat memo
// (hashing) and parsed pipelines (pipeline). Each of those formats is a
// sequence of uvarints, zigzag varints, fixed-size fields and
// length-prefixed strings; their writers use encoding/binary's Append
// functions.
//
// A short or malformed read marks the Reader bad, drops what is left, and
// returns zero values, so a decoder reads on and checks once at the end
// (Done or Bad). Nothing a Reader returns can make its caller index out of
// range or allocate more than the data's size, except Bytes, whose n the
// caller chooses.
package binread
