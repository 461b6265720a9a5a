//! amocrm core (placeholder)
