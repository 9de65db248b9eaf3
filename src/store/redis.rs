//! Redis store (standalone and Cluster): see issue 3. Not yet implemented.
