//! Thousands of mutations of a valid file (bit flips, random bytes, truncation, zeroed,
//! swapped and garbage pages): each opens and reads consistently, or fails typed; none panics.

#[test]
fn mutated_files_open_consistently_or_fail_typed() {
    let (opened, refused) = torture::corrupt::mutation_sweep(1, 3000).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("3000 mutations: {opened} opened and read consistently, {refused} refused with a typed error");
    assert_eq!(opened + refused, 3000);
    assert!(opened > 0 && refused > 0, "the mutations exercise both outcomes");
}

#[test]
fn the_unmutated_sample_reads_whole() {
    let n = torture::corrupt::open_and_read(torture::corrupt::sample_file()).unwrap();
    assert!(n >= 3 * 2 * 40, "{n} entries");
}
