// Demers et al. 1987's published rumor-mongering tables, shared by
// core/tests/validation.rs and core/examples/epidemic_tables.rs (`include!`).

/// One row of a Demers table: k, residue s, traffic m, t_ave, t_last as printed.
type Row = (u8, &'static str, &'static str, &'static str, &'static str);

/// Demers, Greene, Hauser, Irish, Larson, Shenker, Sturgis, Swinehart, Terry,
/// "Epidemic algorithms for replicated database maintenance", PODC 1987; figures
/// as printed in Xerox PARC report CSL-89-1 (1989), Table 1: "Performance of an
/// epidemic on 1000 sites using feedback and counters" (push).
const TABLE_1: [Row; 5] = [
    (1, "0.18", "1.7", "11.0", "16.8"),
    (2, "0.037", "3.3", "12.1", "16.9"),
    (3, "0.011", "4.5", "12.5", "17.4"),
    (4, "0.0036", "5.6", "12.7", "17.5"),
    (5, "0.0012", "6.7", "12.8", "17.7"),
];

/// Table 2: "Performance of an epidemic on 1000 sites using blind and coin" (push;
/// the first column is 1/probability, our k).
const TABLE_2: [Row; 5] = [
    (1, "0.96", "0.04", "19", "38"),
    (2, "0.20", "1.6", "17", "33"),
    (3, "0.060", "2.8", "15", "32"),
    (4, "0.021", "3.9", "14.1", "32"),
    (5, "0.008", "4.9", "13.8", "32"),
];

/// Table 3: "Performance of a pull epidemic on 1000 sites using feedback and
/// counters".
const TABLE_3: [Row; 3] = [
    (1, "0.031", "2.7", "9.97", "17.6"),
    (2, "0.00058", "4.5", "10.07", "15.4"),
    (3, "0.0000040", "6.1", "10.08", "14.0"),
];
